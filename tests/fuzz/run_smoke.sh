#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) on its committed seed
# corpus, one after the other, and fails if any of them finds a crash, a
# leak, a timeout (over 1 s per input) or an out-of-memory (over 2 GB).
#
#   tests/fuzz/run_smoke.sh [SECONDS] [TARGET...]     (TARGET: json, config, ...)
#
# Builds build-fuzz (or $QB_FUZZ_BUILD) with clang first if needed.  New
# inputs go to a scratch directory that is removed afterwards, never into
# tests/fuzz/corpus; crash inputs and logs stay in the build directory
# (fuzz-artifacts/<target>/, fuzz-logs/<target>.log).
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-60}"
shift || true
build="${QB_FUZZ_BUILD:-$src/build-fuzz}"
jobs="${QB_FUZZ_JOBS:-2}"

if [ ! -f "$build/CMakeCache.txt" ]; then
  CC="${CC:-clang}" cmake -S "$src" -B "$build" -DQB_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" -j"$jobs" --target fuzz >/dev/null

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for c in "$src"/tests/fuzz/fuzz_*.c; do
    n="$(basename "$c" .c)"
    targets+=("${n#fuzz_}")
  done
fi

scratch="$(mktemp -d "${TMPDIR:-/tmp}/qb-fuzz-smoke.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$build/fuzz-logs"
export TMPDIR="$scratch"
failed=()
printf '%-16s %10s %9s %7s %7s  %s\n' target execs exec/s cov ft result
for t in "${targets[@]}"; do
  exe="$build/fuzz_$t"
  corpus="$src/tests/fuzz/corpus/$t"
  dict="$src/tests/fuzz/$t.dict"
  log="$build/fuzz-logs/$t.log"
  art="$build/fuzz-artifacts/$t"
  [ -x "$exe" ] && [ -d "$corpus" ] || { echo "fuzz_$t: no executable or no corpus" >&2; failed+=("$t"); continue; }
  mkdir -p "$scratch/$t" "$art"
  args=(-max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$art/")
  [ -f "$dict" ] && args+=(-dict="$dict")
  rc=0
  "$exe" "${args[@]}" "$scratch/$t" "$corpus" >"$log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  ft="$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  result=ok
  if [ $rc -ne 0 ]; then
    result="FAILED (exit $rc): $(grep -m1 -E '^==[0-9]+==ERROR|runtime error|ERROR: libFuzzer' "$log" || echo "see $log")"
    failed+=("$t")
  fi
  printf '%-16s %10s %9s %7s %7s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
  rm -rf "${scratch:?}/$t"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz smoke: ${#failed[@]} target(s) failed: ${failed[*]} (logs in $build/fuzz-logs, inputs in $build/fuzz-artifacts)" >&2
  exit 1
fi
echo "fuzz smoke: ${#targets[@]} targets, ${seconds} s each: no crash, leak, timeout or out-of-memory"
