#!/usr/bin/env bash
# How close are a quantized model's sentence embeddings to FP32's?
#
#   bench/embed_fidelity.sh [OUT_DIR] [--limit N] [--threads N]
#
# Over the SST-2 dev sentences (872), the cosine of each quantized
# embedding to the FP32 one, mean and minimum, for INT8 dynamic, INT8
# static (calibrated on 512 SST-2 train rows), FP16, INT4 weight-only
# (groups of 128) and W4A8 (INT4 weights, dynamic u8 inputs), on
#   - minilm-l6-embed: the random all-MiniLM-L6-v2-shaped checkpoint
#     (../shared/tools/make_random_checkpoint.py, seed 0; its own layout:
#     mean pooling, Normalize), and
#   - bert-mini-sst2's encoder with mean pooling (--pooling mean; the
#     classifier is not run).
# Needs /usr/bin/python3 with numpy.  Prints one table, and the CPU.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
PY=/usr/bin/python3
OUT=$(mktemp -d)
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OUT=$1; shift; fi
LIMIT=0 THREADS=2
while [ $# -gt 0 ]; do
  case $1 in
    --limit) LIMIT=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"

CACHE=$("$HERE/bench/random_model.sh" minilm-l6-embed)

TEXTS=$OUT/sst2-dev.txt
tail -n +2 "$SHARED/data/sst2/dev.tsv" | cut -f1 >"$TEXTS"
if [ "$LIMIT" -gt 0 ]; then head -n "$LIMIT" "$TEXTS" >"$TEXTS.tmp" && mv "$TEXTS.tmp" "$TEXTS"; fi
CALIB=$SHARED/data/sst2/train.tsv

METHODS="dynamic static fp16 int4 w4a8"
quantize() { # quantize SRC METHOD DST
  case $2 in
    dynamic) "$QBERT" quantize "$1" -o "$3" --force --method dynamic ;;
    static) "$QBERT" quantize "$1" -o "$3" --force --method static --calib "$CALIB" --calib-n 512 ;;
    fp16) "$QBERT" quantize "$1" -o "$3" --force --method fp16 ;;
    int4) "$QBERT" quantize "$1" -o "$3" --force --method weight-only --bits 4 ;;
    w4a8) "$QBERT" quantize "$1" -o "$3" --force --method dynamic --bits 4 ;;
  esac >/dev/null
}

run_model() { # run_model NAME DIR [embed flags]
  local name=$1 dir=$2; shift 2
  "$QBERT" embed "$dir" --input "$TEXTS" --format npy -o "$OUT/$name-fp32.npy" --threads "$THREADS" "$@"
  for m in $METHODS; do
    quantize "$dir" "$m" "$OUT/$name-$m"
    "$QBERT" embed "$OUT/$name-$m" --input "$TEXTS" --format npy -o "$OUT/$name-$m.npy" --threads "$THREADS" "$@"
  done
}

run_model minilm-l6-embed "$CACHE"
run_model bert-mini-sst2-mean "$SHARED/models/bert-mini-sst2" --pooling mean

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p')"
echo "texts: $(wc -l <"$TEXTS") SST-2 dev sentences; cosine(quantized, FP32) per sentence"
$PY - "$OUT" $METHODS <<'EOF'
import sys
import numpy as np
out, methods = sys.argv[1], sys.argv[2:]
labels = {"dynamic": "INT8 dynamic", "static": "INT8 static", "fp16": "FP16", "int4": "INT4 weight-only g128",
          "w4a8": "W4A8 dynamic g128"}
print("%-22s %-22s %10s %10s" % ("model", "method", "mean cos", "min cos"))
for model in ("minilm-l6-embed", "bert-mini-sst2-mean"):
    ref = np.load("%s/%s-fp32.npy" % (out, model)).astype(np.float64)
    for m in methods:
        q = np.load("%s/%s-%s.npy" % (out, model, m)).astype(np.float64)
        cos = (ref * q).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(q, axis=1))
        print("%-22s %-22s %10.6f %10.6f" % (model, labels[m], cos.mean(), cos.min()))
EOF
