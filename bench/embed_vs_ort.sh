#!/usr/bin/env bash
# Sentence-embedding throughput, qbert against ONNX Runtime on the same
# model: SST-2 dev (872 sentences), batch 32, input order, FP32 and INT8.
#
#   bench/embed_vs_ort.sh [OUT_DIR] [--rounds N] [--threads N]
#
# Model: minilm-l6-embed (make_random_checkpoint.py, seed 0: all-MiniLM-L6-v2's
# shape and tokenizer, mean pooling, Normalize).  qbert: `qbert bench --data`
# (tokenization included, load excluded; each batch runs its real tokens
# only).  ORT (onnxruntime-node, bench/onnx/ort_embed.mjs): qbert's export of
# the same model, fed the ids qbert made, each batch padded to its longest
# sentence, feeds built inside the clock, load excluded.  INT8: qbert's
# dynamic model, exported in ORT's dynamic form (per-tensor inputs), and
# ORT's own quantize_dynamic graph of the FP32 export (../shared/peers/
# quantize_onnx_dynamic.py).  Runs interleave (A B C D E, then again), the
# table gives medians.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
ORT=$HERE/bench/onnx
PY=/usr/bin/python3
OUT=$(mktemp -d)
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OUT=$1; shift; fi
ROUNDS=3 THREADS=2
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$ORT/node_modules/onnxruntime-node" ] || (cd "$ORT" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
mkdir -p "$OUT"
M=$("$HERE/bench/random_model.sh" minilm-l6-embed)
DEV=$SHARED/data/sst2/dev.tsv
tail -n +2 "$DEV" | cut -f1 >"$OUT/texts.txt"
"$QBERT" embed "$M" --input "$OUT/texts.txt" >"$OUT/ids.jsonl"
[ -d "$OUT/int8" ] || "$QBERT" quantize "$M" -o "$OUT/int8" --method dynamic >/dev/null
"$QBERT" export "$M" -o "$OUT/fp32.onnx"
"$QBERT" export "$OUT/int8" -o "$OUT/int8.onnx"
$PY "$SHARED/peers/quantize_onnx_dynamic.py" --in "$OUT/fp32.onnx" --out "$OUT/ort-int8.onnx" >/dev/null

qbert_rate() { "$QBERT" bench "$1" --data "$DEV" --batch 32 --threads "$THREADS" --json | json_rate sentences_per_s; }
ort_rate() { node "$ORT/ort_embed.mjs" --model "$1" --ids "$OUT/ids.jsonl" --batch 32 --threads "$THREADS" | json_rate per_s; }
json_rate() { $PY -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }

declare -A rate=()
for r in $(seq "$ROUNDS"); do
  rate[qbert-fp32]+="$(qbert_rate "$M") "
  rate[ort-fp32]+="$(ort_rate "$OUT/fp32.onnx") "
  rate[qbert-int8]+="$(qbert_rate "$OUT/int8") "
  rate[ort-int8-qbert-export]+="$(ort_rate "$OUT/int8.onnx") "
  rate[ort-int8-ort-quantizer]+="$(ort_rate "$OUT/ort-int8.onnx") "
done

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "minilm-l6-embed, $(wc -l <"$OUT/texts.txt") SST-2 dev sentences, batch 32, $THREADS threads, median of $ROUNDS rounds"
echo "| engine | precision | sentences/s | runs |"
echo "|---|---|---|---|"
for k in qbert-fp32 ort-fp32 qbert-int8 ort-int8-qbert-export ort-int8-ort-quantizer; do
  $PY - "$k" "${rate[$k]}" <<'EOF'
import statistics, sys
engine, _, prec = sys.argv[1].partition("-")
runs = [float(x) for x in sys.argv[2].split()]
print("| %s | %s | %.1f | %s |" % ("qbert" if engine == "qbert" else "ONNX Runtime", prec, statistics.median(runs),
                                   " ".join("%.1f" % x for x in runs)))
EOF
done
