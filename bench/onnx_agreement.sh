#!/usr/bin/env bash
# qbert's ONNX export checked by ONNX Runtime (onnxruntime-node, bench/onnx):
# for each model, FP32, dynamic INT8 and static INT8 exports pass
# onnx.checker, then ORT runs them on the token ids qbert used (padded
# batches of 4) and is compared with qbert's own outputs on the same
# precision: the largest logit difference, the agreement of the predicted
# labels (SST-2 dev, 872 sentences; CoNLL-2003 validation, per token), and
# both accuracies on SST-2.  Then ORT's latency on qbert's static export
# beside ORT's own dynamic INT8 (../shared/peers: export_onnx.py +
# quantize_onnx_dynamic.py) at seq 128, batch 1 and 8.
#
#   bench/onnx_agreement.sh [OUT_DIR] [--threads N] [--base-n N]
#
# Random bert-base (make_random_checkpoint.py bert-base, seed 0) is checked
# in FP32 only, on its first --base-n sentences (default 64): a random
# classifier predicts one class, so INT8 agreement would mean nothing.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
ORT=$HERE/bench/onnx
PY=/usr/bin/python3
OUT=$(mktemp -d)
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OUT=$1; shift; fi
THREADS=2 BASE_N=64
while [ $# -gt 0 ]; do
  case $1 in
    --threads) THREADS=$2; shift 2 ;;
    --base-n) BASE_N=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$ORT/node_modules/onnxruntime-node" ] || (cd "$ORT" && npm ci --ignore-scripts --no-audit --no-fund >/dev/null)
mkdir -p "$OUT"
BASE=$("$HERE/bench/random_model.sh" bert-base)

SST=$SHARED/data/sst2/dev.tsv
tail -n +2 "$SST" | cut -f1 >"$OUT/sst2.txt"
head -n "$BASE_N" "$OUT/sst2.txt" >"$OUT/sst2-base.txt"
# CoNLL sentences, one a line: qbert predict splits words on whitespace
grep -v '^-DOCSTART' "$SHARED/data/conll2003/valid.txt" |
  awk 'NF == 0 { if (s != "") print s; s = ""; next } { s = (s == "" ? $1 : s " " $1) } END { if (s != "") print s }' \
    >"$OUT/conll.txt"

checker() { $PY -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' "$1"; }

# row NAME PRECISION DIR TEXTS [LABELS]: export, check, predict, compare; one table row
row() {
  local name=$1 prec=$2 dir=$3 texts=$4 labels=${5:-} f=$OUT/$1-$2
  "$QBERT" export "$dir" -o "$f.onnx"
  local ok=no
  checker "$f.onnx" && ok=yes
  "$QBERT" predict "$dir" --input "$texts" --json --threads "$THREADS" >"$f.jsonl"
  node "$ORT/ort_check.mjs" --model "$f.onnx" --qbert "$f.jsonl" --threads "$THREADS" ${labels:+--labels "$labels"} \
    >"$f.json"
  $PY - "$f.json" "$name" "$prec" "$ok" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
acc = lambda k: "%.2f" % (100 * j[k]) if k in j else "-"
print("| %s | %s | %s | %d | %.2e | %.2f%% (%d) | %s | %s |" % (sys.argv[2], sys.argv[3], sys.argv[4], j["examples"],
      j["max_abs_diff"], 100 * j["agreement"], j["compared"], acc("qbert_accuracy"), acc("ort_accuracy")))
EOF
}

quantized() { # quantized NAME METHOD [CALIB]: the model's int8 copy, made once
  local d=$OUT/$1-$2 n=512
  [ "$1" = bert-base ] && n=128 # calibrating bert-base on 512 texts takes minutes; its speed does not depend on it
  [ -d "$d" ] || "$QBERT" quantize "$(src "$1")" -o "$d" --method "$2" ${3:+--calib "$3" --calib-n $n} >/dev/null
  echo "$d"
}
src() { case $1 in bert-base) echo "$BASE" ;; *) echo "$SHARED/models/$1" ;; esac; }

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'); load average: $(cut -d' ' -f1-3 /proc/loadavg); $THREADS threads"
echo "ORT: onnxruntime-node $(node -p "require('$ORT/node_modules/onnxruntime-node/package.json').version")"
echo
echo "| model | precision | onnx.checker | examples | max abs logit diff | label agreement (compared) | qbert acc % | ORT acc % |"
echo "|---|---|---|---|---|---|---|---|"
for name in bert-mini-sst2 albert-mini-sst2; do
  row "$name" fp32 "$(src $name)" "$OUT/sst2.txt" "$SST"
  row "$name" int8-dynamic "$(quantized $name dynamic)" "$OUT/sst2.txt" "$SST"
  row "$name" int8-static "$(quantized $name static "$SHARED/data/sst2/train.tsv")" "$OUT/sst2.txt" "$SST"
done
row bert-mini-conll fp32 "$(src bert-mini-conll)" "$OUT/conll.txt"
row bert-mini-conll int8-dynamic "$(quantized bert-mini-conll dynamic)" "$OUT/conll.txt"
row bert-mini-conll int8-static "$(quantized bert-mini-conll static "$SHARED/data/conll2003/train.txt")" "$OUT/conll.txt"
row bert-base fp32 "$BASE" "$OUT/sst2-base.txt"

# Latency: ORT on qbert's static (QDQ) export against ORT on the peers'
# dynamic INT8 (ORT's own quantizer's graph), interleaved by bench_ort.mjs
# runs A B A B.
echo
echo "ORT latency (ms, median of rounds; seq 128, every token real; $THREADS threads)"
echo "| model | graph | batch 1 | batch 8 |"
echo "|---|---|---|---|"
for name in bert-mini-sst2 bert-base; do
  peer=$OUT/peers-$name
  if [ ! -f "$peer.int8.onnx" ]; then
    $PY "$SHARED/peers/export_onnx.py" --ckpt "$(src $name)" --out "$peer.fp32.onnx" >/dev/null 2>&1 &&
      $PY "$SHARED/peers/quantize_onnx_dynamic.py" --in "$peer.fp32.onnx" --out "$peer.int8.onnx" >/dev/null 2>&1 ||
      { echo "| $name | peers' dynamic INT8: export failed (python3-torch?) | - | - |"; continue; }
  fi
  static=$OUT/$name-int8-static.onnx
  [ -f "$static" ] || "$QBERT" export "$(quantized $name static "$SHARED/data/sst2/train.tsv")" -o "$static"
  for round in 1 2 3; do
    for g in "$static" "$peer.int8.onnx"; do
      NODE_PATH=$ORT/node_modules node "$SHARED/peers/bench_ort.mjs" --model "$g" --batches 1,8 --seq 128 \
        --warmup 2 --iters 10 --max-time 20 --threads "$THREADS" --out "$OUT/lat-$(basename "$g")-$round.json" >/dev/null
    done
  done
  $PY - "$name" "$OUT" "$(basename "$static")" "$(basename "$peer.int8.onnx")" <<'EOF'
import glob, json, statistics, sys
name, out = sys.argv[1:3]
for graph, label in ((sys.argv[3], "qbert static INT8 (QDQ)"), (sys.argv[4], "ORT quantize_dynamic INT8")):
    runs = [json.load(open(f)) for f in sorted(glob.glob("%s/lat-%s-*.json" % (out, graph)))]
    med = lambda b: statistics.median(r["latency"]["b%d" % b]["median_ms"] for r in runs)
    print("| %s | %s | %.2f | %.2f |" % (name, label, med(1), med(8)))
EOF
done
