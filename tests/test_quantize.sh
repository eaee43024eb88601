#!/usr/bin/env bash
# Quantization end to end: each method's model directory loads, runs and
# keeps its accuracy; the files are what docs/quantized-format.md says (a
# Python reader opens them); sizes shrink; bad quantized models and bad
# requests are refused cleanly.
set -u
. "$(dirname "$0")/lib.sh"
M=$SRC/models/bert-mini-sst2
Q=$TMP/q
mkdir -p "$Q" # qbert creates OUT, not its parents (--parents)

quantize() { "$QBERT" quantize "$M" "$@" >"$TMP/quantize.out" 2>"$TMP/quantize.err"; }

# dynamic int8 with int8 embeddings: loads, says what it is, and is small
quantize -o "$Q/dyn" --method dynamic --quantize-embeddings
check "quantize dynamic" test $? -eq 0
"$QBERT" info "$Q/dyn" >"$TMP/info.txt"
check "info shows int8" grep -q "precision    dynamic int8 (activations per-token): 26 linears, 1 fp32, 25 int8, 8.1 bits per linear weight (scales included); int8 word embeddings" "$TMP/info.txt"
# which instructions run the int8 products is said: AMX only where the CPU
# has it (and never on a forced AVX2 table)
check "AVX2 table does not claim AMX" bash -c "! QBERT_ISA=avx2 '$QBERT' info '$Q/dyn' | grep -q 'AMX'"
if grep -qw amx_int8 /proc/cpuinfo && [ -z "${QBERT_ISA:-}" ]; then
  check "info says AMX where the CPU has it" grep -q "; int8 products on AMX tiles" "$TMP/info.txt"
fi
"$QBERT" info "$Q/dyn" --tensors --json >"$TMP/info.json"
check "info lists I8 tensors" test "$(json_get "$TMP/info.json" 'sum(t["dtype"] == "I8" for t in j["tensors"])')" -ge 25
ratio=$($PY -c "import os,sys; print(os.path.getsize(sys.argv[1]) / os.path.getsize(sys.argv[2]))" "$Q/dyn/model.safetensors" "$M/model.safetensors")
echo "  size ratio (dynamic, int8 embeddings) on bert-mini: $ratio"
check "int8 file <= 27% of FP32" $PY -c "import sys; sys.exit(not $ratio <= 0.27)"
"$QBERT" predict "$Q/dyn" "a gripping, beautifully acted film" "the plot is thin and the jokes fall flat" >"$TMP/p.txt"
check "int8 predicts positive" bash -c "head -1 '$TMP/p.txt' | grep -q '^positive'"
check "int8 predicts negative" bash -c "sed -n 2p '$TMP/p.txt' | grep -q '^negative'"

# the format is readable without qbert
if $PY -c 'import numpy' 2>/dev/null; then
  check "python reads the int8 model" $PY - "$Q/dyn" <<'PYEOF'
import json, struct, sys, numpy as np
d = sys.argv[1]
data = open(d + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n])
def t(name, dt):
    b, e = h[name]["data_offsets"]
    return np.frombuffer(data[8 + n + b:8 + n + e], dtype=dt).reshape(h[name]["shape"])
w = "bert.encoder.layer.0.attention.self.query.weight"
assert h[w]["dtype"] == "I8" and h[w + "_scale"]["dtype"] == "F32" and h[w + "_zero_point"]["dtype"] == "I8"
q, s = t(w, np.int8), t(w + "_scale", np.float32)
assert q.shape == (256, 256) and s.shape == (256,) and (t(w + "_zero_point", np.int8) == 0).all()
cfg = json.load(open(d + "/config.json"))["quantization_config"]
assert cfg["quant_method"] == "qbert" and cfg["method"] == "dynamic" and cfg["bits"] == 8
assert cfg["modules"]["classifier"] == "fp32" and cfg["embeddings"] == "int8-rowwise"
PYEOF
fi

# fp16 / bf16 halve the file and predict like FP32
for m in fp16 bf16; do
  quantize -o "$Q/$m" --method $m
  check "quantize $m" test $? -eq 0
  check "$m info" grep -q "precision    $m" <("$QBERT" info "$Q/$m")
done

# static with calibration; saved statistics reproduce the same scales
need_shared data/sst2/train.tsv
CAL=$SHARED/data/sst2/train.tsv
quantize -o "$Q/static" --method static --calib "$CAL" --calib-n 32 --observer percentile:99.99
check "quantize static" test $? -eq 0
"$QBERT" calibrate "$M" --calib "$CAL" --calib-n 32 -o "$TMP/stats.json" >/dev/null 2>&1
check "calibrate" test $? -eq 0
quantize -o "$Q/static2" --method static --calib-stats "$TMP/stats.json" --observer percentile:99.99
check "static from saved stats" cmp -s "$Q/static/model.safetensors" "$Q/static2/model.safetensors"
for obs in minmax mse entropy; do
  quantize -o "$Q/static-$obs" --method static --calib-stats "$TMP/stats.json" --observer $obs
  check "observer $obs" test $? -eq 0
done

# int8 attention: Q, K and V scales from the same calibration (saved statistics too)
quantize -o "$Q/static-attn" --method static --calib-stats "$TMP/stats.json" --observer percentile:99.99 --int8-attention
check "quantize static int8 attention" test $? -eq 0
check "info shows int8 attention" grep -q "; int8 attention" <("$QBERT" info "$Q/static-attn")
check "config says int8 attention" grep -q '"attention": "int8"' "$Q/static-attn/config.json"
check "Q, K, V output scales written" test "$($PY -c "
import json,struct,sys; d=open(sys.argv[1],'rb').read(); h=json.loads(d[8:8+struct.unpack('<Q',d[:8])[0]])
print(sum(k.endswith(('.output_scale','.output_zero_point')) for k in h))" "$Q/static-attn/model.safetensors")" -eq 16

# too few calibration rows: a warning that states how many were used
printf 'sentence\tlabel\na fine film\t1\na dull film\t0\n' >"$TMP/small.tsv"
quantize -o "$Q/small" --method static --calib "$TMP/small.tsv"
check "small calibration works" test $? -eq 0
check "small calibration warns" grep -q "calibrated on 2, not the 512 asked" "$TMP/quantize.err"

# accuracy on SST-2 dev against FP32, with agreement
need_shared data/sst2/dev.tsv
DEV=$SHARED/data/sst2/dev.tsv
"$QBERT" eval "$M" --data "$DEV" --max-length 66 $([ -n "$SANITIZE" ] && echo --limit 40) --json >"$TMP/fp32.json"
base=$(json_get "$TMP/fp32.json" 'j["accuracy"]')
LIMIT=()
[ -n "$SANITIZE" ] && LIMIT=(--limit 40)
for v in dyn:0.005 static:0.005 static-attn:0.005 fp16:0.001 bf16:0.001; do
  name=${v%%:*} budget=${v#*:}
  "$QBERT" eval "$Q/$name" --data "$DEV" --max-length 66 --reference "$M" "${LIMIT[@]}" --json >"$TMP/$name.json"
  acc=$(json_get "$TMP/$name.json" 'j["accuracy"]')
  agree=$(json_get "$TMP/$name.json" 'j["agreement"]')
  printf '  %-11s accuracy %.4f (fp32 %.4f), agreement with fp32 %.4f\n' "$name" "$acc" "$base" "$agree"
  check "$name loses <= $budget" $PY -c "import sys; sys.exit(not $base - $acc <= $budget)"
done

# the slow tokenizer's added tokens go with the model
mkdir -p "$TMP/added"
for f in config.json model.safetensors vocab.txt tokenizer_config.json; do ln -sf "$M/$f" "$TMP/added/$f"; done
printf '{"covid19": 1}' >"$TMP/added/added_tokens.json"
"$QBERT" quantize "$TMP/added" -o "$Q/added" --method dynamic >/dev/null 2>"$TMP/err"
check "added_tokens.json copied" test "$("$QBERT" predict "$Q/added" covid19 --json --fields input_ids 2>&1)" = '{"input_ids": [101, 1, 102]}'

# refusals
quantize -o "$M" --method dynamic
check "refuses to overwrite its input" grep -q "refusing to overwrite the input model\|already exists" "$TMP/quantize.err"
# --force replaces OUT whole: never a directory holding the model or a file it reads
mkdir -p "$TMP/holder/sub"
for f in config.json model.safetensors vocab.txt tokenizer_config.json; do ln -sf "$M/$f" "$TMP/holder/sub/$f"; done
"$QBERT" quantize "$TMP/holder/sub" -o "$TMP/holder" --force --method dynamic >/dev/null 2>"$TMP/err"
check "--force refuses a directory holding the input model" grep -q "holder: refusing to overwrite the input model" "$TMP/err"
check "... and leaves it alone" test -e "$TMP/holder/sub/config.json"
printf '{"*": "int8"}' >"$TMP/holder/map.json"
quantize -o "$TMP/holder" --force --method dynamic --precision-map "$TMP/holder/map.json"
check "--force refuses a directory holding a file the run reads" \
  grep -q "holder: refusing to replace it: it holds .*map.json, which this run reads" "$TMP/quantize.err"
quantize -o "$Q/dyn" --method dynamic
check "refuses an existing output" grep -q "already exists (use --force" "$TMP/quantize.err"
"$QBERT" quantize "$Q/dyn" -o "$Q/again" --method dynamic >/dev/null 2>"$TMP/err"
check "refuses to requantize" grep -q "already quantized" "$TMP/err"
quantize -o "$Q/nocalib" --method static --calib "$TMP/missing.tsv"
check "missing calibration file fails" test $? -eq 1
check "no partial output dir" test ! -e "$Q/nocalib"
check "no temporary left" bash -c "! ls -d '$Q'/nocalib.tmp-* 2>/dev/null"
quantize -o "$Q/x" --method dynamic --keep 'no.such.layer*'
check "unmatched --keep is an error" grep -q "matches no linear" "$TMP/quantize.err"
quantize -o "$Q/x" --method static --calib-stats "$TMP/stats.json" --observer median
check "unknown observer is an error" grep -q "unknown observer" "$TMP/quantize.err"
quantize -o "$Q/x" --method dynamic --int8-attention
check "int8 attention needs static" grep -q "int8-attention needs --method static" "$TMP/quantize.err"
$PY -c "import json,sys; j=json.load(open(sys.argv[1])); del j['outputs']; json.dump(j, open(sys.argv[2],'w'))" \
  "$TMP/stats.json" "$TMP/old-stats.json"
quantize -o "$Q/x" --method static --calib-stats "$TMP/old-stats.json" --int8-attention
check "statistics without Q/K/V refused for int8 attention" grep -q "no statistics of the attention inputs" "$TMP/quantize.err"
quantize -o "$Q/x" --method static --calib-stats "$TMP/old-stats.json"
check "older statistics still quantize" test $? -eq 0
# statistics fit only the model they were taken on: a copy of it with one
# weight changed has the same layer names, and is refused
mkdir -p "$TMP/other"
cp "$M"/* "$TMP/other/"
$PY -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(-1,2); b=f.read(1); f.seek(-1,2); f.write(bytes([b[0]^1]))" \
  "$TMP/other/model.safetensors"
"$QBERT" quantize "$TMP/other" -o "$Q/x" --force --method static --calib-stats "$TMP/stats.json" >/dev/null \
  2>"$TMP/quantize.err"
check "statistics of another model refused" grep -q "stats.json: calibrated on another model" "$TMP/quantize.err"
# saved statistics are a finished calibration: texts or a count beside them
# are refused, and so is another truncation; the config records the length
ML=$(json_get "$TMP/stats.json" 'j["max_length"]')
check "config records the calibration length" test -n "$ML" -a "$(json_get "$Q/static2/config.json" \
  'j["quantization_config"]["calibration"]["max_length"]')" = "$ML"
for extra in "--calib $CAL" "--calib-n 8" "--smoothquant 0.5 --calib $CAL"; do
  quantize -o "$Q/x" --force --method static --calib-stats "$TMP/stats.json" $extra
  check "--calib-stats with $extra is a usage error" test $? -eq 2
done
quantize -o "$Q/x" --force --method static --calib-stats "$TMP/stats.json" --max-length 66
check "--calib-stats with another --max-length refused" \
  grep -q "stats.json: statistics of texts truncated at $ML tokens, not the --max-length 66" "$TMP/quantize.err"
quantize -o "$Q/x" --force --method static --calib-stats "$TMP/stats.json" --max-length "$ML"
check "--calib-stats with its own --max-length" test $? -eq 0
# GPTQ reads its texts at the statistics' length unless told another
"$QBERT" calibrate "$M" --calib "$CAL" --calib-n 16 --max-length 16 -o "$TMP/stats16.json" >/dev/null 2>&1
for ml in "" 16; do
  quantize -o "$Q/gptq$ml" --method static --bits 4 --calib-stats "$TMP/stats16.json" --rounding gptq \
    --calib "$CAL" --calib-n 16 ${ml:+--max-length $ml}
done
check "GPTQ beside --calib-stats cuts texts at their length" \
  cmp -s "$Q/gptq/model.safetensors" "$Q/gptq16/model.safetensors"
# a statistics file's text count goes into config.json and its version says
# how to read it: both are checked
for bad in n=-5 n=1e12 n='"abc"' n=2.5 qbert_calibration=99 qbert_calibration=None qbert_calibration=1; do
  $PY -c "import json,sys; j=json.load(open(sys.argv[1])); k,v=sys.argv[3].split('=',1); v=eval(v)
if v is None: del j[k]
else: j[k]=v
json.dump(j, open(sys.argv[2],'w'))" "$TMP/stats.json" "$TMP/bad-stats.json" "$bad"
  quantize -o "$Q/x" --force --method static --calib-stats "$TMP/bad-stats.json"
  rc=$?
  check "stats file $bad refused" test $rc -eq 1 -a "$(wc -l <"$TMP/quantize.err")" -eq 1
  check "stats file $bad: the error names it" grep -q "bad-stats.json: " "$TMP/quantize.err"
done

# a precision map makes a mixed model
printf '{"bert.encoder.layer.0.*": "fp16", "bert.encoder.layer.3.output.dense": "fp32"}' >"$TMP/map.json"
quantize -o "$Q/mixed" --method dynamic --precision-map "$TMP/map.json"
check "mixed precision map" grep -q "26 linears, 2 fp32, 6 fp16, 18 int8" <("$QBERT" info "$Q/mixed")
quantize -o "$Q/kept" --method dynamic --precision-map "$TMP/map.json" --keep 'bert.encoder.layer.0.attention.*'
check "--keep wins over the map's glob" grep -q "26 linears, 6 fp32, 2 fp16, 18 int8" <("$QBERT" info "$Q/kept")
printf '{"bert.encoder.layer.3.attention.self.query": "int8-dynamic"}' >"$TMP/dynmap.json"
quantize -o "$Q/static-dyn" --method static --calib-stats "$TMP/stats.json" --precision-map "$TMP/dynmap.json"
check "info --linears: a map's int8-dynamic in a static model says so" test "$("$QBERT" info "$Q/static-dyn" --linears --json |
  json_get /dev/stdin '" ".join(sorted(set(l["format"] for l in j["linears"])))')" = "fp32 int8 int8-dynamic"

# broken quantized models
broken() { # broken NAME PYTHON_HEADER_EDIT
  local d=$TMP/broken-$1
  mkdir -p "$d"; cp "$Q/dyn/config.json" "$Q/dyn/vocab.txt" "$d/"
  retile "$Q/dyn/model.safetensors" "$d/model.safetensors" "$2"
  echo "$d"
}
W=bert.encoder.layer.1.intermediate.dense.weight
d=$(broken noscale "del h['${W}_scale']")
"$QBERT" info "$d" >/dev/null 2>"$TMP/err"; rc=$?
check "missing scale refused" bash -c "[ $rc -eq 1 ] && grep -q \"has no '${W}_scale'\" '$TMP/err'"
d=$(broken scaletype "h['${W}_scale']['dtype'] = 'I32'")
"$QBERT" info "$d" >/dev/null 2>"$TMP/err"; rc=$?
check "wrong scale dtype refused" bash -c "[ $rc -eq 1 ] && grep -q '${W}_scale.*must be F32' '$TMP/err'"
d=$(broken noconfig "pass"); $PY -c "
import json,sys; p=sys.argv[1]+'/config.json'; c=json.load(open(p)); del c['quantization_config']; json.dump(c, open(p,'w'))" "$d"
"$QBERT" info "$d" >/dev/null 2>"$TMP/err"; rc=$?
check "int8 without quantization_config refused" bash -c "[ $rc -eq 1 ] && grep -q 'is I8 but config.json has no .*quantization_config' '$TMP/err'"
d=$(broken badmethod "pass"); $PY -c "
import json,sys; p=sys.argv[1]+'/config.json'; c=json.load(open(p)); c['quantization_config']['method']='int3'; json.dump(c, open(p,'w'))" "$d"
"$QBERT" info "$d" >/dev/null 2>"$TMP/err"; rc=$?
check "unknown method refused" bash -c "[ $rc -eq 1 ] && grep -q 'quantization_config.method must be' '$TMP/err'"
d=$(broken static "pass"); $PY -c "
import json,sys; p=sys.argv[1]+'/config.json'; c=json.load(open(p)); q=c['quantization_config']; q['method']='static'; q['activations']['granularity']='per-tensor'; json.dump(c, open(p,'w'))" "$d"
"$QBERT" info "$d" >/dev/null 2>"$TMP/err"; rc=$?
check "static config without input scales refused" bash -c "[ $rc -eq 1 ] && grep -q 'input_scale' '$TMP/err'"
d=$(broken dynattn "pass"); $PY -c "
import json,sys; p=sys.argv[1]+'/config.json'; c=json.load(open(p)); c['quantization_config']['attention']='int8'; json.dump(c, open(p,'w'))" "$d"
"$QBERT" info "$d" >/dev/null 2>"$TMP/err"; rc=$?
check "int8 attention in a dynamic config refused" bash -c "[ $rc -eq 1 ] && grep -q 'int8 attention needs static quantization' '$TMP/err'"
K=bert.encoder.layer.2.attention.self.key.output_scale
d=$TMP/broken-attn; mkdir -p "$d"; cp "$Q/static-attn/config.json" "$Q/static-attn/vocab.txt" "$d/"
retile "$Q/static-attn/model.safetensors" "$d/model.safetensors" "del h['$K']"
"$QBERT" info "$d" >/dev/null 2>"$TMP/err"; rc=$?
check "missing K output scale refused" bash -c "[ $rc -eq 1 ] && grep -q \"has no '$K'\" '$TMP/err'"

# SIGINT (a job-controlled shell's Ctrl-C) or SIGTERM mid-write: the staged
# output is removed and the process dies of the signal
for sig in INT TERM; do
  mkdir -p "$TMP/sig$sig"
  set -m
  "$QBERT" quantize "$M" -o "$TMP/sig$sig/out" --method weight-only --bits 4 --codebook kmeans --threads 1 \
    >/dev/null 2>"$TMP/sig$sig.err" &
  pid=$!
  set +m
  for _ in $(seq 400); do ls -d "$TMP/sig$sig"/out.tmp-* >/dev/null 2>&1 || ! kill -0 $pid 2>/dev/null && break
    sleep 0.02; done
  kill -$sig $pid 2>/dev/null
  wait $pid; rc=$?
  want=$((128 + $(kill -l $sig)))
  check "SIG$sig mid-quantize: dies of it ($rc, $(head -c 80 "$TMP/sig$sig.err"))" test $rc -eq $want
  check "SIG$sig mid-quantize: nothing left beside OUT_DIR" test -z "$(ls -A "$TMP/sig$sig")"
done
finish
