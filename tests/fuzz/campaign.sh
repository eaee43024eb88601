#!/usr/bin/env bash
# The long campaign of issue 17: each target run until RUNS executions
# (default 10 million) or SECONDS (default 3 hours), QB_FUZZ_JOBS targets at
# a time (default: the CPUs), in libFuzzer's fork mode so that one slow
# input does not end the run.  An input over 1 s is kept and replayed alone
# afterwards: it counts as a finding only if it is slow again (a busy
# machine can starve one execution).  Corpora grow in WORK_DIR, outside the
# repository; a second campaign in the same WORK_DIR starts from them.
#
#   tests/fuzz/campaign.sh WORK_DIR [--runs N] [--seconds S] [TARGET...]
#
# Prints a row per target: executions, seconds, coverage, features, corpus
# size, and its findings (crashes, leaks, out-of-memory, timeouts that
# replay); exits 1 if any target has one.
set -euo pipefail
. "$(dirname "$0")/common.sh"
[ $# -ge 1 ] && [ "$1" != --help ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
work=$1; shift
runs=10000000 seconds=10800 args=()
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
fuzz_build
fuzz_targets "${args[@]}"
mkdir -p "$work"
fuzz_scratch campaign

# campaign_one TARGET: runs it, replays its slow inputs, writes its row.
campaign_one() {
  local t=$1 exe="$build/fuzz_$1" dict="$src/tests/fuzz/$1.dict"
  local corpus="$work/$1" art="$work/$1.artifacts/" log="$work/$1.log"
  mkdir -p "$corpus" "$art"
  cp -n "$src/tests/fuzz/corpus/$t"/* "$corpus/" 2>/dev/null || true
  local args=(-fork=1 -ignore_timeouts=1 -timeout=1 -rss_limit_mb=2048 -runs="$runs" -max_total_time="$seconds"
              -artifact_prefix="$art")
  [ -f "$dict" ] && args+=(-dict="$dict")
  local start=$SECONDS rc=0
  "$exe" "${args[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  local took=$((SECONDS - start)) last findings=""
  last="$(grep -E '^#[0-9]+' "$log" | tail -1)" || true
  for f in "$art"*; do
    [ -e "$f" ] || continue
    case $(basename "$f") in
      timeout-*) "$exe" -timeout=1 -rss_limit_mb=2048 "$f" >"$work/$t.replay.log" 2>&1 || findings+=" $(basename "$f")" ;;
      *) findings+=" $(basename "$f")" ;;
    esac
  done
  [ $rc -eq 0 ] || findings+=" exit-$rc"
  printf '%-16s %11s %7s %6s %6s %6s  %s\n' "$t" "$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")" "${took}s" \
    "$(grep -oE 'cov: [0-9]+' <<<"$last" | cut -d' ' -f2)" "$(grep -oE 'ft: [0-9]+' <<<"$last" | cut -d' ' -f2)" \
    "$(grep -oE 'corp: [0-9]+' <<<"$last" | cut -d' ' -f2)" "${findings:-none}" >"$work/$t.row"
}

fuzz_each campaign_one
printf '%-16s %11s %7s %6s %6s %6s  %s\n' target executions time cov ft corpus findings
bad=0
for t in "${targets[@]}"; do
  cat "$work/$t.row"
  grep -q ' none$' "$work/$t.row" || bad=1
done
exit $bad
