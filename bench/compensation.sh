#!/usr/bin/env bash
# Error compensation against plain rounding (issue 16, bars 1 to 3):
#   bench/compensation.sh [OUT_DIR] [gptq|bias|smooth]...
#
# gptq:   RTN and GPTQ at 4, 3 and 2 bits (dynamic, groups of 128) on the four
#         trained models and a random bert-base: per-linear output MSE on 256
#         held-out training texts (bench_layer_error), logit SQNR, KL and
#         cosine against FP32, and accuracy (entity F1 for CoNLL).
# bias:   per-tensor 4-bit weights with and without --bias-correction: the
#         mean per-channel output shift on the held-out texts, agreement.
# smooth: a bert-mini with outlier dimensions (make_random_checkpoint.py
#         --outlier-dims 2 --outlier-scale 50 --outlier-compensate): static
#         int8 with each observer, then with --smoothquant 0.5; dynamic
#         per-token int8 beside.
# Calibration: 512 training rows spread over the set; held out: 256 others.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
LAYERS=$(dirname "$QBERT")/bench_layer_error
PY=/usr/bin/python3
OUT=${1:-$(mktemp -d)}
shift || true
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(gptq bias smooth)
mkdir -p "$OUT"
echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) threads, qbert $(git -C "$HERE" rev-parse --short HEAD)"

BASE=$("$HERE/bench/random_model.sh" bert-base)
cases=(
  "bert-mini-sst2|$SHARED/models/bert-mini-sst2|sst2/train.tsv|sst2/dev.tsv|66|accuracy|0"
  "albert-mini-sst2|$SHARED/models/albert-mini-sst2|sst2/train.tsv|sst2/dev.tsv|66|accuracy|0"
  "bert-mini-imdb|$SHARED/models/bert-mini-imdb|imdb/train-8000.tsv|imdb/test-2000.tsv|256|accuracy|0"
  "bert-mini-conll|$SHARED/models/bert-mini-conll|conll2003/train.txt|conll2003/valid.txt|128|entity_f1|0"
  "random-bert-base|$BASE|sst2/train.tsv|sst2/dev.tsv|66|accuracy|300"
)

# split TRAIN NAME: OUT/NAME.calib (512 examples spread evenly over the
# training set: CoNLL's train is in document order, and its first sentences
# alone are not like the rest) and OUT/NAME.held (256 others, in between)
split() {
  $PY - "$1" "$OUT/$2" <<'PYEOF'
import sys
src, dst = sys.argv[1:3]
text = open(src, encoding="utf-8").read()
if src.endswith(".txt"):  # CoNLL: sentences are blank-line separated blocks
    head, rows, sep = [], [b for b in text.split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")], "\n\n"
else:
    lines = [l + "\n" for l in text.split("\n") if l]  # not splitlines: reviews hold U+0085 and U+2028
    head, rows, sep = lines[:1], lines[1:], ""
step = len(rows) // 512
for name, pick in ((".calib", rows[::step][:512]), (".held", rows[step // 2::step][:256])):
    open(dst + name, "w", encoding="utf-8").write("".join(head) + sep.join(pick) + ("\n" if sep else ""))
PYEOF
}
# evaluate DIR MODEL DATA LEN LIMIT: eval --json (against MODEL when DIR differs)
evaluate() {
  local ref=() lim=()
  [ "$1" != "$2" ] && ref=(--reference "$2")
  [ "$5" != 0 ] && lim=(--limit "$5")
  "$QBERT" eval "$1" --data "$SHARED/data/$3" --max-length "$4" "${ref[@]}" "${lim[@]}" --json
}
row() { # row NAME WHAT JSON FP32_JSON METRIC QUANT_LOG EXTRA
  $PY - "$@" <<'PYEOF'
import json, re, sys
name, what, jf, ff, metric, log, extra = sys.argv[1:8]
j, f = json.load(open(jf)), json.load(open(ff))
t = re.search(r"time +([\d.]+) s", open(log).read())
print("%-17s %-14s %8.4f %+8.2f %9.4f %8.2f %9.2e %9.6f %7ss  %s" % (name, what, j[metric],
      100 * (j[metric] - f[metric]), j["agreement"], j.get("sqnr_db", 300), j["kl"], j["cosine"],
      t.group(1) if t else "-", extra))
PYEOF
}
header() {
  printf '%-17s %-14s %8s %8s %9s %8s %9s %9s %8s  %s\n' model method metric delta_pt agreement sqnr_db kl cosine \
    time "$1"
}
# wins FILE A B: "B lower MSE on x/y linears, mean |shift| ratio r"
wins() {
  $PY - "$@" <<'PYEOF'
import csv, sys, collections
d = collections.defaultdict(dict)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    d[r["linear"]][r["model"].rsplit("/", 1)[-1]] = (float(r["mse"]), float(r["mean_abs_shift"]))
a, b = sys.argv[2], sys.argv[3]
ls = [l for l in d if d[l][a][0] > 0]
w = sum(d[l][b][0] < d[l][a][0] for l in ls)
print("lower MSE on %d/%d linears (%.0f%%), mean |shift| x%.3f" % (w, len(ls), 100.0 * w / len(ls),
      sum(d[l][b][1] for l in ls) / sum(d[l][a][1] for l in ls)))
PYEOF
}

gptq_part() {
  header "held-out per-linear error, GPTQ vs RTN"
  for c in "${cases[@]}"; do
    IFS='|' read -r name M train data len metric limit <<<"$c"
    split "$SHARED/data/$train" "$name"
    evaluate "$M" "$M" "$data" "$len" "$limit" >"$OUT/$name.fp32.json"
    for b in 4 3 2; do
      for r in rtn gptq; do
        q=$OUT/$name.$r$b
        extra=()
        [ $r = gptq ] && extra=(--rounding gptq --calib "$OUT/$name.calib" --max-length "$len")
        "$QBERT" quantize "$M" -o "$q" --force --method dynamic --bits $b "${extra[@]}" >"$q.log" 2>&1
        evaluate "$q" "$M" "$data" "$len" "$limit" >"$q.json"
      done
      "$LAYERS" "$M" "$OUT/$name.held" 256 "$OUT/$name.rtn$b" "$OUT/$name.gptq$b" --max-length "$len" \
        >"$OUT/$name.layers$b.tsv"
      row "$name" "int$b rtn" "$OUT/$name.rtn$b.json" "$OUT/$name.fp32.json" "$metric" "$OUT/$name.rtn$b.log" ""
      row "$name" "int$b gptq" "$OUT/$name.gptq$b.json" "$OUT/$name.fp32.json" "$metric" "$OUT/$name.gptq$b.log" \
        "$(wins "$OUT/$name.layers$b.tsv" "$name.rtn$b" "$name.gptq$b")"
    done
  done
}

bias_part() {
  header "held-out per-linear error, bias correction vs none"
  for c in "${cases[@]}"; do
    IFS='|' read -r name M train data len metric limit <<<"$c"
    [ -f "$OUT/$name.calib" ] || split "$SHARED/data/$train" "$name"
    [ -f "$OUT/$name.fp32.json" ] || evaluate "$M" "$M" "$data" "$len" "$limit" >"$OUT/$name.fp32.json"
    for v in pt4 pt4bc; do
      q=$OUT/$name.$v
      extra=()
      [ $v = pt4bc ] && extra=(--bias-correction --calib "$OUT/$name.calib" --max-length "$len")
      "$QBERT" quantize "$M" -o "$q" --force --method dynamic --bits 4 --granularity per-tensor "${extra[@]}" \
        >"$q.log" 2>&1
      evaluate "$q" "$M" "$data" "$len" "$limit" >"$q.json"
    done
    "$LAYERS" "$M" "$OUT/$name.held" 256 "$OUT/$name.pt4" "$OUT/$name.pt4bc" --max-length "$len" >"$OUT/$name.bc.tsv"
    row "$name" "int4/tensor" "$OUT/$name.pt4.json" "$OUT/$name.fp32.json" "$metric" "$OUT/$name.pt4.log" ""
    row "$name" "int4/tensor+bc" "$OUT/$name.pt4bc.json" "$OUT/$name.fp32.json" "$metric" "$OUT/$name.pt4bc.log" \
      "$(wins "$OUT/$name.bc.tsv" "$name.pt4" "$name.pt4bc")"
  done
}

smooth_part() {
  local M=$OUT/outlier-bert-mini
  [ -d "$M" ] || $PY "$SHARED/tools/make_random_checkpoint.py" bert-mini "$M" --seed 0 --outlier-dims 2 \
    --outlier-scale 50 --outlier-compensate --vocab "$SHARED/models/bert-mini-sst2/vocab.txt" >/dev/null
  [ -f "$OUT/bert-mini-sst2.calib" ] || split "$SHARED/data/sst2/train.tsv" bert-mini-sst2
  evaluate "$M" "$M" sst2/dev.tsv 66 0 >"$OUT/outlier.fp32.json"
  header "(outlier bert-mini: accuracy of a random head)"
  "$QBERT" quantize "$M" -o "$OUT/outlier.dynamic" --force --method dynamic >"$OUT/outlier.dynamic.log" 2>&1
  evaluate "$OUT/outlier.dynamic" "$M" sst2/dev.tsv 66 0 >"$OUT/outlier.dynamic.json"
  row outlier-bert-mini dynamic "$OUT/outlier.dynamic.json" "$OUT/outlier.fp32.json" accuracy \
    "$OUT/outlier.dynamic.log" "per-token int8"
  for obs in minmax percentile:99.99 mse entropy; do
    for s in plain smooth; do
      q=$OUT/outlier.$s.${obs%%:*}
      extra=()
      [ $s = smooth ] && extra=(--smoothquant 0.5)
      "$QBERT" quantize "$M" -o "$q" --force --method static --observer "$obs" --calib "$OUT/bert-mini-sst2.calib" \
        --max-length 66 "${extra[@]}" >"$q.log" 2>&1
      evaluate "$q" "$M" sst2/dev.tsv 66 0 >"$q.json"
      row outlier-bert-mini "static${s/plain/}" "$q.json" "$OUT/outlier.fp32.json" accuracy "$q.log" "$obs"
    done
  done
}

for p in "${parts[@]}"; do "${p}_part"; done
