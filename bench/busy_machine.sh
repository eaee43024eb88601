#!/usr/bin/env bash
# Threads on a busy machine (issue #19): `qbert bench` at 2 threads, batch 1,
# seq 128, on an idle machine and with a busy loop pinned to CPU 1, for two
# binaries (this build and an older one), rounds interleaved A B B A so that
# background load drifts over both alike.
#
#   bench/busy_machine.sh NEW_QBERT BASE_QBERT MODEL_DIR [ROUNDS] [RUNS]
#
# Prints, per binary and condition, the median over rounds of each round's
# p50 with the spread (min..max of those p50s), then the ratios the issue
# sets bars on: busy / idle for each binary, and new / base when idle.  The
# load average before and after says how idle "idle" was.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 NEW_QBERT BASE_QBERT MODEL_DIR [ROUNDS (7)] [RUNS per bench (20)]" >&2
  exit 2
fi
NEW=$1 BASE=$2 MODEL=$3 ROUNDS=${4:-7} RUNS=${5:-20}
OUT=$(mktemp)
. "$(dirname "$0")/busy_lib.sh"
trap 'stop_busy; rm -f "$OUT"' EXIT

# a bench that prints no p50 stops the script (it once became a round of 0 ms)
p50() {
  local v
  v=$("$1" bench "$MODEL" --seq 128 --batch 1 --threads 2 --runs "$RUNS" --warmup 3 --json |
    sed -n 's/.*"p50_ms": \([0-9.]*\).*/\1/p')
  [ -n "$v" ] || { echo "busy_machine.sh: $1 bench printed no p50" >&2; return 1; }
  echo "$v"
}

echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
p50_of() { if [ "$1" = base ]; then p50 "$BASE"; else p50 "$NEW"; fi; }
busy_rounds "$ROUNDS" "$OUT" p50_of
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); $ROUNDS rounds of $RUNS runs each"

declare -A med
for b in new base; do
  for c in idle busy; do
    read -r m lo hi <<<"$(busy_median "$OUT" $b $c)"
    med[$b-$c]=$m
    printf "%-4s %-4s p50 median %8.2f ms  (rounds %.2f .. %.2f)\n" $b $c "$m" "$lo" "$hi"
  done
done
awk -v nb="${med[new-busy]}" -v ni="${med[new-idle]}" -v bb="${med[base-busy]}" -v bi="${med[base-idle]}" 'BEGIN {
  printf "busy / idle:        new %.2fx   base %.2fx\n", nb / ni, bb / bi
  printf "new / base, idle:   %.3fx\n", ni / bi
}'
