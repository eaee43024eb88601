#!/usr/bin/env bash
# Low-bit weights on the four trained models (issue 15, bar 3): accuracy (or
# entity F1 for CoNLL) against qbert's own FP32, agreement and logit SQNR
# against FP32, and the weights' SQNR (k-means beside its rows' grid):
#   bench/lowbit_accuracy.sh [OUT_DIR] [METHOD...]
# Same examples and max lengths as ../shared/models/MODELS.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
OUT=${1:-$(mktemp -d)}
shift || true
mkdir -p "$OUT"
cases=(
  "bert-mini-sst2|sst2/dev.tsv|66|accuracy"
  "albert-mini-sst2|sst2/dev.tsv|66|accuracy"
  "bert-mini-imdb|imdb/test-2000.tsv|256|accuracy"
  "bert-mini-conll|conll2003/valid.txt|128|entity_f1"
)
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(int8 int4 int4-weight-only int4-zp int4-channel int3 int2 int2-zp ternary
                                      kmeans4 kmeans3 kmeans2)
args_of() { # the quantize options of a method; embeddings at the weights' bits
  case $1 in
    int8) echo --method dynamic --quantize-embeddings ;;
    int4) echo --method dynamic --bits 4 --quantize-embeddings ;;
    int4-weight-only) echo --method weight-only --bits 4 --quantize-embeddings ;;
    int4-zp) echo --method dynamic --bits 4 --weight-zero-point --quantize-embeddings ;;
    int4-channel) echo --method dynamic --bits 4 --group-size channel --quantize-embeddings ;;
    int3) echo --method dynamic --bits 3 --quantize-embeddings ;;
    int2) echo --method dynamic --bits 2 --quantize-embeddings ;;
    int2-zp) echo --method dynamic --bits 2 --weight-zero-point --quantize-embeddings ;;
    ternary) echo --method dynamic --bits ternary --quantize-embeddings ;;
    kmeans*) echo --method weight-only --bits "${1#kmeans}" --codebook kmeans --quantize-embeddings ;;
    *) echo "unknown method $1" >&2; exit 2 ;;
  esac
}
printf '%-17s %-17s %8s %8s %9s %9s %9s %10s %s\n' model method metric fp32 delta_pt agreement sqnr_db size_pct weights
for c in "${cases[@]}"; do
  IFS='|' read -r model data len metric <<<"$c"
  M=$SHARED/models/$model
  "$QBERT" eval "$M" --data "$SHARED/data/$data" --max-length "$len" --json >"$OUT/$model.fp32.json"
  for meth in "${methods[@]}"; do
    q=$OUT/$model.$meth
    # shellcheck disable=SC2046
    "$QBERT" quantize "$M" -o "$q" --force $(args_of "$meth") >"$q.log" 2>&1
    "$QBERT" eval "$q" --data "$SHARED/data/$data" --max-length "$len" --reference "$M" --json >"$q.json"
    /usr/bin/python3 - "$q.json" "$OUT/$model.fp32.json" "$metric" "$model" "$meth" "$q.log" <<'PYEOF'
import json, re, sys
j, f = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
metric, log = sys.argv[3], open(sys.argv[6]).read()
size = re.search(r"\(([\d.]+)% of the input", log).group(1)
w = re.search(r"weights +SQNR ([\d.]+) dB", log)
cb = re.search(r"their rows' uniform grids ([\d.]+) dB; (\d+) linear", log)
wtxt = (w.group(1) + " dB" if w else "-") + (" (grid %s dB, %s below)" % (cb.group(1), cb.group(2)) if cb else "")
print("%-17s %-17s %8.4f %8.4f %+9.2f %9.4f %9.2f %9s%% %s" % (sys.argv[4], sys.argv[5], j[metric], f[metric],
      100 * (j[metric] - f[metric]), j["agreement"], j.get("sqnr_db", float("nan")), size, wtxt))
PYEOF
  done
done
