#!/usr/bin/env bash
# Error compensation end to end: GPTQ beats round-to-nearest per linear (on
# texts it did not calibrate on) and in the logits, bias correction removes
# most of the mean output shift of per-tensor 4-bit weights, SmoothQuant
# rescues static int8 on a BERT with outlier dimensions, a dead input
# channel leaves no NaN, and bad options get one-line errors.
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/bert-mini-sst2/model.safetensors
need_shared data/sst2/train.tsv
need_shared data/imdb/train-8000.tsv
need_shared tools/make_random_checkpoint.py
M=$SHARED/models/bert-mini-sst2
DEV=$SHARED/data/sst2/dev.tsv
LAYERS=${QB_BUILD_DIR:-$(dirname "$QBERT")}/bench_layer_error
CALIB=128 HELD=128 N=300 BC_MAX=0.2
# (16 texts estimate the shift too roughly for the bar: there it must only fall)
[ -n "$SANITIZE" ] && CALIB=16 HELD=16 N=16 BC_MAX=1
# calibration and held-out rows from all over the training set, apart
awk 'NR == 1 || NR % 50 == 0' "$SHARED/data/sst2/train.tsv" | head -n $((CALIB + 1)) >"$TMP/calib.tsv"
awk 'NR == 1 || NR % 50 == 25' "$SHARED/data/sst2/train.tsv" | head -n $((HELD + 1)) >"$TMP/held.tsv"

quant() { # quant NAME MODEL ARGS...
  local name=$1 model=$2; shift 2
  "$QBERT" quantize "$model" -o "$TMP/$name" "$@" >"$TMP/$name.log" 2>&1
}
# fidelity NAME REF FIELD: eval's logit fidelity FIELD (sqnr_db, cosine) to REF
fidelity() {
  "$QBERT" eval "$TMP/$1" --data "$DEV" --limit "$N" --max-length 66 --reference "$2" --json >"$TMP/$1.json" &&
    json_get "$TMP/$1.json" "j.get('$3', 300)"
}
eval_ok() { fidelity "$1" "$2" cosine >/dev/null; }
greater() { $PY -c "import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)" "$1" "$2"; }
# layers BASE OTHER: "<linears where OTHER's MSE is lower> <linears> <shift ratio>" over held-out texts
layers() {
  "$LAYERS" "$M" "$TMP/held.tsv" "$HELD" "$TMP/$1" "$TMP/$2" --max-length 66 >"$TMP/layers.tsv" || return 1
  $PY - "$TMP/layers.tsv" "$1" "$2" <<'PYEOF'
import csv, sys, collections
d = collections.defaultdict(dict)
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    d[r["linear"]][r["model"].rsplit("/", 1)[-1]] = (float(r["mse"]), float(r["mean_abs_shift"]))
a, b = sys.argv[2], sys.argv[3]
ls = [l for l in d if d[l][a][0] > 0]
print(sum(d[l][b][0] < d[l][a][0] for l in ls), len(ls),
      sum(d[l][b][1] for l in ls) / sum(d[l][a][1] for l in ls))
PYEOF
}

# GPTQ against round to nearest, same format
quant rtn4 "$M" --method dynamic --bits 4
quant gptq4 "$M" --method dynamic --bits 4 --rounding gptq --calib "$TMP/calib.tsv" --max-length 66
check "quantize --rounding gptq" test $? -eq 0
check "config records the rounding and its texts" test "$(json_get "$TMP/gptq4/config.json" \
  '*[j["quantization_config"]["compensation"][k] for k in ("rounding", "bias_correction")], j["quantization_config"]["compensation"]["calibration_n"] > 0')" \
  = "gptq False True"
read -r lower total _ <<<"$(layers rtn4 gptq4)"
check "gptq4: lower output MSE than rtn4 on $lower of $total linears (>= 90%)" test $((lower * 10)) -ge $((total * 9))
rtn_db=$(fidelity rtn4 "$M" sqnr_db) gptq_db=$(fidelity gptq4 "$M" sqnr_db)
check "gptq4 logit SQNR $gptq_db dB > rtn4 $rtn_db dB" greater "$gptq_db" "$rtn_db"
# block inputs over --gptq-memory (16 reviews of 128 tokens: 2 MB): passes
# run from the embeddings, and store the same bytes
head -n 17 "$SHARED/data/imdb/train-8000.tsv" >"$TMP/long.tsv"
for mem in "" "--gptq-memory 1"; do
  quant "gptq4-mem${mem:+-low}" "$M" --method dynamic --bits 4 --rounding gptq --calib "$TMP/long.tsv" \
    --max-length 128 $mem
  check "gptq ${mem:-with its default memory} succeeds" test $? -eq 0
done
check "gptq --gptq-memory 1: warns that passes run from the embeddings" \
  grep -q "block inputs (2 MB) exceed 1 MB" "$TMP/gptq4-mem-low.log"
check "gptq --gptq-memory 1: the same model.safetensors" cmp -s "$TMP/gptq4-mem/model.safetensors" \
  "$TMP/gptq4-mem-low/model.safetensors"
quant gptq3-ao "$M" --method weight-only --bits 3 --weight-zero-point --group-size 64 --rounding gptq \
  --gptq-act-order --gptq-damp 0.05 --calib "$TMP/calib.tsv" --max-length 66
check "gptq with act order, zero points and groups of 64" test $? -eq 0
quant gptq-tern "$M" --method dynamic --bits ternary --rounding gptq --calib "$TMP/calib.tsv" --max-length 66
check "gptq on ternary weights" test $? -eq 0
check "gptq ternary runs" eval_ok gptq-tern "$M"

# bias correction on per-tensor 4-bit weights
quant pt4 "$M" --method dynamic --bits 4 --granularity per-tensor
quant pt4-bc "$M" --method dynamic --bits 4 --granularity per-tensor --bias-correction --calib "$TMP/calib.tsv" \
  --max-length 66
check "quantize --bias-correction" test $? -eq 0
check "bias correction records its $CALIB texts" test "$(json_get "$TMP/pt4-bc/config.json" \
  'j["quantization_config"]["compensation"]["calibration_n"]')" = "$CALIB"
check "per-tensor int4 says so in config" test "$(json_get "$TMP/pt4/config.json" \
  'j["quantization_config"]["weights"]["granularity"]')" = per-tensor
read -r _ _ ratio <<<"$(layers pt4 pt4-bc)"
check "bias correction leaves $ratio of the mean output shift (<= $BC_MAX)" greater "$BC_MAX" "$ratio"

# SmoothQuant on a BERT whose residual stream has outlier dimensions
$PY "$SHARED/tools/make_random_checkpoint.py" bert-mini "$TMP/outl" --seed 0 --outlier-dims 2 --outlier-scale 50 \
  --outlier-compensate --vocab "$M/vocab.txt" >/dev/null
quant st "$TMP/outl" --method static --observer minmax --calib "$TMP/calib.tsv" --max-length 66
quant sq "$TMP/outl" --method static --observer minmax --smoothquant 0.5 --calib "$TMP/calib.tsv" --max-length 66
check "quantize --smoothquant" test $? -eq 0
st_db=$(fidelity st "$TMP/outl" sqnr_db) sq_db=$(fidelity sq "$TMP/outl" sqnr_db)
check "smoothquant logit SQNR $sq_db dB >= minmax $st_db dB + 10" greater "$sq_db" "$($PY -c "print($st_db + 10)")"
check "smoothquant logits' cosine >= 0.99" greater "$(fidelity sq "$TMP/outl" cosine)" 0.99
params() { "$QBERT" info "$1" | grep '^parameters'; }
check "smoothing factors are not counted as parameters" test "$(params "$TMP/sq")" = "$(params "$TMP/outl")"
rewrite_header "$TMP/sq/model.safetensors" "$TMP/bad.safetensors" \
  'h["bert.encoder.layer.0.attention.self.query.input_smooth"]["dtype"] = "I32"'
mkdir -p "$TMP/sqbad" && cp "$TMP/sq"/* "$TMP/sqbad/" && mv "$TMP/bad.safetensors" "$TMP/sqbad/model.safetensors"
"$QBERT" info "$TMP/sqbad" >/dev/null 2>"$TMP/sqbad.err"
check "a mistyped input_smooth is a one-line error naming it" \
  bash -c "[ \$(wc -l <'$TMP/sqbad.err') -eq 1 ] && grep -q 'input_smooth' '$TMP/sqbad.err'"

# a dead input channel (LayerNorm gamma and beta 0) makes the Hessian singular
$PY - "$M" "$TMP/dead" <<'PYEOF'
import json, os, shutil, struct, sys
import numpy as np
src, dst = sys.argv[1:3]
shutil.copytree(src, dst)
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
data = bytearray(raw[8 + n:])
for name in ("bert.embeddings.LayerNorm.weight", "bert.embeddings.LayerNorm.bias"):
    a, _ = h[name]["data_offsets"]
    data[a + 4 * 7:a + 4 * 8] = np.float32(0).tobytes()
open(os.path.join(dst, "model.safetensors"), "wb").write(raw[:8 + n] + bytes(data))
PYEOF
quant dead4 "$TMP/dead" --method dynamic --bits 4 --rounding gptq --bias-correction --calib "$TMP/calib.tsv" \
  --max-length 66
check "gptq with a dead input channel succeeds" test $? -eq 0
check "... and its weights are finite" $PY - "$TMP/dead4/model.safetensors" <<'PYEOF'
import json, struct, sys
import numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
for k, v in h.items():
    if k != "__metadata__" and v["dtype"] in ("F32", "F16"):
        a, b = v["data_offsets"]
        x = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32 if v["dtype"] == "F32" else np.float16)
        if not np.isfinite(x).all(): sys.exit(1)
PYEOF
check "... and it runs" eval_ok dead4 "$TMP/dead"

# bad requests: usage errors, one line each, no output directory
bad() { # bad WHAT ARGS...: fails with one line (and usage errors the --help hint), no OUT
  local what=$1; shift
  rm -rf "$TMP/bad"
  "$QBERT" quantize "$M" -o "$TMP/bad" "$@" >/dev/null 2>"$TMP/bad.err"
  local rc=$? lines
  lines=$(grep -vc "^(see 'qbert quantize --help')$" "$TMP/bad.err")
  check "$what: fails ($rc) with one line ($lines)" test $rc -ne 0 -a "$lines" -eq 1
  check "$what: no output directory" test ! -e "$TMP/bad"
}
bad "gptq without --calib" --method dynamic --bits 4 --rounding gptq
bad "gptq on int8" --method dynamic --rounding gptq --calib "$TMP/calib.tsv"
bad "--rounding other" --method dynamic --bits 4 --rounding stochastic
bad "--gptq-damp 0" --method dynamic --bits 4 --rounding gptq --gptq-damp 0 --calib "$TMP/calib.tsv"
bad "--gptq-act-order without gptq" --method dynamic --bits 4 --gptq-act-order
bad "--gptq-memory without gptq" --method dynamic --bits 4 --gptq-memory 64
bad "--gptq-memory 0" --method dynamic --bits 4 --rounding gptq --gptq-memory 0 --calib "$TMP/calib.tsv"
bad "--smoothquant 1.5" --method static --calib "$TMP/calib.tsv" --smoothquant 1.5
bad "--smoothquant on dynamic" --method dynamic --calib "$TMP/calib.tsv" --smoothquant 0.5
bad "--bias-correction without --calib" --method dynamic --bits 4 --bias-correction
bad "--smoothquant with only --calib-stats" --method static --calib-stats "$TMP/none.json" --smoothquant 0.5
finish
