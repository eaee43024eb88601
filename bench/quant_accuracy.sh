#!/usr/bin/env bash
# Accuracy of every quantization method on the four trained models, beside
# FP32 and with agreement with FP32's predictions (issue 3, bar 1):
#   bench/quant_accuracy.sh [OUT_DIR]
# Same examples and max lengths as the reference numbers in
# ../shared/models/MODELS.md; static methods calibrate on 512 training rows.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
# model | dataset | max_length | calibration data | metric
cases=(
  "bert-mini-sst2|sst2/dev.tsv|66|sst2/train.tsv|accuracy"
  "albert-mini-sst2|sst2/dev.tsv|66|sst2/train.tsv|accuracy"
  "bert-mini-imdb|imdb/test-2000.tsv|256|imdb/train-8000.tsv|accuracy"
  "bert-mini-conll|conll2003/valid.txt|128|conll2003/train.txt|entity_f1"
)
# "+attn": also Q.K^T and P.V in int8 (--int8-attention)
methods=(dynamic static-minmax static-percentile static-mse static-entropy static-percentile+attn static-mse+attn
         fp16 bf16)
printf '%-17s %-22s %9s %9s %9s %9s\n' model method metric fp32 delta_pt agreement
for c in "${cases[@]}"; do
  IFS='|' read -r model data len calib metric <<<"$c"
  M=$SHARED/models/$model
  "$QBERT" eval "$M" --data "$SHARED/data/$data" --max-length "$len" --json >"$OUT/$model.fp32.json"
  base=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['$metric'])" "$OUT/$model.fp32.json")
  for meth in "${methods[@]}"; do
    q=$OUT/$model.$meth
    case $meth in
      dynamic) args=(--method dynamic --quantize-embeddings) ;;
      static-*) obs=${meth#static-}; obs=${obs%+attn}
                args=(--method static --quantize-embeddings --calib "$SHARED/data/$calib" --max-length "$len"
                      --observer "$( [ "$obs" = percentile ] && echo percentile:99.99 || echo "$obs")")
                if [ "${meth%+attn}" != "$meth" ]; then args+=(--int8-attention); fi ;;
      *) args=(--method "$meth") ;;
    esac
    "$QBERT" quantize "$M" -o "$q" --force "${args[@]}" >/dev/null 2>"$q.log"
    "$QBERT" eval "$q" --data "$SHARED/data/$data" --max-length "$len" --reference "$M" --json >"$q.json"
    /usr/bin/python3 - "$q.json" "$metric" "$base" "$model" "$meth" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1])); metric, base = sys.argv[2], float(sys.argv[3])
print("%-17s %-22s %9.4f %9.4f %+9.2f %9.4f" % (sys.argv[4], sys.argv[5], j[metric], base, 100 * (j[metric] - base), j["agreement"]))
PYEOF
  done
done
