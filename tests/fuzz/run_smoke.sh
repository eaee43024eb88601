#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) on its committed seed
# corpus, QB_FUZZ_JOBS (default: the CPUs) at a time, and fails if any of them finds a crash, a
# leak, a timeout (over 1 s per input) or an out-of-memory (over 2 GB).
#
#   tests/fuzz/run_smoke.sh [SECONDS] [TARGET...]     (TARGET: json, config, ...)
#
# Builds build-fuzz (or $QB_FUZZ_BUILD) with clang first if needed.  New
# inputs go to a scratch directory that is removed afterwards, never into
# tests/fuzz/corpus; crash inputs and logs stay in the build directory
# (fuzz-artifacts/<target>/, fuzz-logs/<target>.log).
set -euo pipefail
. "$(dirname "$0")/common.sh"
seconds="${1:-60}"
shift || true
fuzz_build
fuzz_targets "$@"
fuzz_scratch smoke
mkdir -p "$build/fuzz-logs"
# run_one TARGET: runs it and writes its table row to $scratch/TARGET.row
# (a first word "FAILED" when it found something).
run_one() {
  local t=$1 exe="$build/fuzz_$1" corpus="$src/tests/fuzz/corpus/$1" dict="$src/tests/fuzz/$1.dict"
  local log="$build/fuzz-logs/$1.log" art="$build/fuzz-artifacts/$1" row="$scratch/$1.row"
  if [ ! -x "$exe" ] || [ ! -d "$corpus" ]; then
    echo "FAILED $(printf '%-16s' "$t") no executable or no corpus" >"$row"
    return
  fi
  mkdir -p "$scratch/$t" "$art"
  local args=(-max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/")
  [ -f "$dict" ] && args+=(-dict="$dict")
  local rc=0
  "$exe" "${args[@]}" "$scratch/$t" "$corpus" >"$log" 2>&1 || rc=$?
  local execs rate cov ft result=ok
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" 2>/dev/null | tail -1)" || true
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" 2>/dev/null | tail -1)" || true
  cov="$(grep -o 'cov: [0-9]*' "$log" 2>/dev/null | tail -1 | cut -d' ' -f2)" || true
  ft="$(grep -o 'ft: [0-9]*' "$log" 2>/dev/null | tail -1 | cut -d' ' -f2)" || true
  if [ $rc -ne 0 ]; then
    result="FAILED (exit $rc): $(grep -m1 -E '^==[0-9]+==ERROR|runtime error|ERROR: libFuzzer' "$log" || echo "see $log")"
  fi
  printf '%-16s %10s %9s %7s %7s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result" >"$row"
  rm -rf "${scratch:?}/$t"
}

fuzz_each run_one
failed=()
printf '%-16s %10s %9s %7s %7s  %s\n' target execs exec/s cov ft result
for t in "${targets[@]}"; do
  row="$(cat "$scratch/$t.row")"
  echo "${row#FAILED }"
  case "$row" in FAILED*|*FAILED*) failed+=("$t") ;; esac
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke: ${#failed[@]} target(s) failed: ${failed[*]} (logs in $build/fuzz-logs, inputs in $build/fuzz-artifacts)" >&2
  exit 1
fi
echo "fuzz smoke: ${#targets[@]} targets, ${seconds} s each: no crash, leak, timeout or out-of-memory"
