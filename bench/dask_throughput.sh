#!/usr/bin/env bash
# qbert.dask_score on IMDB test-2000 (issue #20, bar 3): a LocalCluster of
# 2 workers x 1 thread against 1 worker x 2 threads, in alternating rounds
# (A B A B) so background load hits both alike, each output checked byte
# for byte against one `qbert predict --input FILE --json`.
#   bench/dask_throughput.sh [MODEL_DIR] [ROUNDS]
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
M=${1:-$SRC/../shared/models/bert-mini-imdb}
ROUNDS=${2:-2}
DATA=$SRC/../shared/data/imdb/test-2000.tsv
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export QBERT_LIB=$SRC/build/libqbert.so PYTHONPATH=$SRC/python
n=$(($(wc -l <"$DATA") - 1))
s=$(date +%s.%N)
"$SRC/build/qbert" predict "$M" --input "$DATA" --json --threads 2 >"$T/want.jsonl" 2>/dev/null
echo "one qbert predict process, 2 threads: $(echo "$n / ($(date +%s.%N) - $s)" | bc -l | xargs printf '%.1f') texts/s"
for r in $(seq "$ROUNDS"); do
  for cfg in "2 1" "1 2"; do
    set -- $cfg
    out=$T/out-$1x$2-$r
    s=$(date +%s.%N)
    /usr/bin/python3 -m qbert.dask_score "$M" --input "$DATA" --output "$out" --workers "$1" --threads "$2" \
      --partition-lines 128 2>/dev/null
    rate=$(echo "$n / ($(date +%s.%N) - $s)" | bc -l)
    same=$(cat "$out"/part-*.jsonl | cmp -s - "$T/want.jsonl" && echo byte-identical || echo DIFFERENT)
    printf 'round %d: %d worker(s) x %d thread(s): %.1f texts/s (cluster start included), %s\n' "$r" "$1" "$2" "$rate" "$same"
  done
done
