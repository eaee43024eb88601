#!/usr/bin/env bash
# Sentences per second of `qbert embed` over the SST-2 dev sentences (872),
# batch 32, FP32 against INT8 dynamic, runs interleaved (A B A B ...) so
# background load hits both alike.
#
#   bench/embed_speed.sh [OUT_DIR] [--rounds N] [--threads N]
#
# Each run is the whole command (load, tokenize, forward, write .npy); the
# load-and-write overhead, timed on one sentence, is printed beside it and
# subtracted for the "model" column.  Models: minilm-l6-embed (random,
# seed 0, all-MiniLM-L6-v2's shape) and bert-mini-sst2 with mean pooling.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
PY=/usr/bin/python3
OUT=$(mktemp -d)
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OUT=$1; shift; fi
ROUNDS=5 THREADS=2
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
CACHE=$("$HERE/bench/random_model.sh" minilm-l6-embed)
TEXTS=$OUT/sst2-dev.txt
tail -n +2 "$SHARED/data/sst2/dev.tsv" | cut -f1 >"$TEXTS"
N=$(wc -l <"$TEXTS")
echo "one" >"$OUT/one.txt"

secs() { # secs DIR INPUT [flags]: wall seconds of one embed run
  local dir=$1 input=$2; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  "$QBERT" embed "$dir" --input "$input" --batch 32 --threads "$THREADS" --format npy -o "$OUT/e.npy" "$@"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$N SST-2 dev sentences, batch 32, $THREADS threads, median of $ROUNDS interleaved runs"
printf "%-22s %-14s %12s %12s %14s\n" model precision "run (s)" "overhead (s)" "sentences/s"
for spec in "minilm-l6-embed|$CACHE|" "bert-mini-sst2-mean|$SHARED/models/bert-mini-sst2|--pooling mean"; do
  IFS='|' read -r name dir flags <<<"$spec"
  "$QBERT" quantize "$dir" -o "$OUT/$name-int8" --force --method dynamic >/dev/null
  declare -A runs=() over=()
  for r in $(seq "$ROUNDS"); do
    for p in fp32 int8; do
      d=$dir; [ $p = int8 ] && d=$OUT/$name-int8
      # shellcheck disable=SC2086
      runs[$p]+="$(secs "$d" "$TEXTS" $flags) "
      # shellcheck disable=SC2086
      over[$p]+="$(secs "$d" "$OUT/one.txt" $flags) "
    done
  done
  for p in fp32 int8; do
    $PY - "$name" "$p" "$N" "${runs[$p]}" "${over[$p]}" <<'EOF'
import statistics, sys
name, prec, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
run = statistics.median(float(x) for x in sys.argv[4].split())
over = statistics.median(float(x) for x in sys.argv[5].split())
print("%-22s %-14s %12.3f %12.3f %7.0f (%.0f)" % (name, prec, run, over, n / max(run - over, 1e-9), n / run))
EOF
  done
  unset runs over
done
echo "sentences/s: the model's (run minus overhead), in parentheses the whole command's"
