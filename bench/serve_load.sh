#!/usr/bin/env bash
# qbert serve under load (issue #19, bar 2): wrk posts SST-2 dev sentences
# to /predict (/embed for an embedding model), one connection at a time and
# then 32 at once, alternated
# ROUNDS times so background load hits both alike; prints req/s, p50/p99,
# errors and the server's RSS after warm-up and at the end.
#   bench/serve_load.sh [MODEL_DIR] [SECONDS] [ROUNDS] [-- serve options]
# (defaults: models/bert-mini-sst2, 60 s, 1 round)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${1:-$SRC/models/bert-mini-sst2}
SECS=${2:-60}
ROUNDS=${3:-1}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = "--" ] && shift
QBERT=${QBERT_BIN:-$SRC/build/qbert}
DATA=${QB_SHARED_DIR:-$SRC/../shared}/data/sst2/dev.tsv
TMP=$(mktemp -d)
. "$SRC/bench/serve_lib.sh"
trap 'kill ${SERVE_PID:-} 2>/dev/null; rm -rf "$TMP"' EXIT
serve_start "$QBERT" "$MODEL" "$TMP/log" "$@"
PID=$SERVE_PID PORT=$SERVE_PORT
sst2_bodies "$DATA" "$TMP/bodies.jsonl"
ENDPOINT=/predict
curl -s "http://127.0.0.1:$PORT/info" | grep -q '"model_type":{"embedding"' && ENDPOINT=/embed
run() { serve_wrk "$PORT" "$1" "$2" "$TMP/bodies.jsonl" "$ENDPOINT"; } # run CONNECTIONS SECONDS
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $MODEL ($ENDPOINT), serve options: ${*:-none}"
run 32 10 >/dev/null # warm-up: every batch shape seen, allocator settled
rss0=$(rss)
for r in $(seq "$ROUNDS"); do
  echo "round $r, 1 connection:   $(run 1 "$SECS" | tr '\n' ' ')"
  echo "round $r, 32 connections: $(run 32 "$SECS" | tr '\n' ' ')"
done
rss1=$(rss)
echo "RSS after warm-up $rss0 kB, at the end $rss1 kB ($(/usr/bin/python3 -c "print('%+.1f%%' % (100 * ($rss1 / $rss0 - 1)))"))"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^qbert_(batch_size_(sum|count)|errors_total)'
