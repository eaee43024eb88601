#!/usr/bin/env bash
# qbert serve on a busy machine (issue #19, bar 5): requests/s with 32
# connections (wrk posting SST-2 dev sentences to /predict) on an idle
# machine and with a busy loop pinned to CPU 1, for two binaries served
# side by side, rounds alternated A B / B A so background load drifts over
# both alike.
#   bench/serve_busy.sh NEW_QBERT BASE_QBERT MODEL_DIR [ROUNDS (3)] [SECONDS (10)]
# Prints each binary's median req/s idle and busy (with the rounds' spread)
# and idle / busy, the slowdown the bar limits to 1.5x.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 NEW_QBERT BASE_QBERT MODEL_DIR [ROUNDS (3)] [SECONDS (10)]" >&2
  exit 2
fi
NEW=$1 BASE=$2 MODEL=$3 ROUNDS=${4:-3} SECS=${5:-10}
SRC=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
. "$SRC/bench/serve_lib.sh"
. "$SRC/bench/busy_lib.sh"
PIDS=
trap 'stop_busy; kill $PIDS 2>/dev/null; rm -rf "$TMP"' EXIT
declare -A port
for b in new base; do
  bin=$NEW
  [ $b = base ] && bin=$BASE
  serve_start "$bin" "$MODEL" "$TMP/$b.log" --threads 2
  PIDS="$PIDS $SERVE_PID"
  port[$b]=$SERVE_PORT
done
sst2_bodies "${QB_SHARED_DIR:-$SRC/../shared}/data/sst2/dev.tsv" "$TMP/bodies.jsonl"
rps() { serve_wrk "${port[$1]}" 32 "$2" "$TMP/bodies.jsonl" /predict | sed -n 's/^RESULT.* rps \([0-9.]*\) .*non2xx \([0-9]*\).*/\1 \2/p'; }
for b in new base; do rps $b 3 >/dev/null; done # warm-up
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# one round's req/s; errors stop the script
rps_of() {
  local v errors
  read -r v errors <<<"$(rps "$1" "$SECS")"
  [ -n "$v" ] && [ "$errors" = 0 ] || { echo "serve_busy.sh: $1: no rate or errors (${errors:-?})" >&2; return 1; }
  echo "$v"
}
busy_rounds "$ROUNDS" "$TMP/out" rps_of
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); $ROUNDS rounds of $SECS s"
declare -A med
for b in new base; do
  for c in idle busy; do
    read -r m lo hi <<<"$(busy_median "$TMP/out" $b $c)"
    med[$b-$c]=$m
    printf "%-4s %-4s %8.1f req/s  (rounds %.1f .. %.1f)\n" $b $c "$m" "$lo" "$hi"
  done
done
awk -v nb="${med[new-busy]}" -v ni="${med[new-idle]}" -v bb="${med[base-busy]}" -v bi="${med[base-idle]}" 'BEGIN {
  printf "idle / busy:        new %.2fx   base %.2fx\n", ni / nb, bi / bb
  printf "new / base, idle:   %.3fx\n", ni / bi
}'
