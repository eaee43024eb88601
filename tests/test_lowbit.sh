#!/usr/bin/env bash
# Low-bit weights end to end: every format quantizes, loads, says what it is
# and stays close to FP32; every kernel set computes the same logits; bad
# low-bit files and options get one-line errors and leave no OUT_DIR.
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/bert-mini-sst2/model.safetensors
need_shared models/albert-mini-sst2/model.safetensors
need_shared data/sst2/dev.tsv
M=$SHARED/models/bert-mini-sst2
A=$SHARED/models/albert-mini-sst2
DEV=$SHARED/data/sst2/dev.tsv
N=200
[ -n "$SANITIZE" ] && N=12

# quant NAME MODEL ARGS...: quantizes into $TMP/NAME
quant() {
  local name=$1 model=$2; shift 2
  "$QBERT" quantize "$model" -o "$TMP/$name" "$@" >"$TMP/$name.log" 2>&1
}
# agrees NAME MODEL MIN: eval of the first N dev rows agrees with MODEL at >= MIN
agrees() {
  "$QBERT" eval "$TMP/$1" --data "$DEV" --limit "$N" --max-length 66 --reference "$2" --json >"$TMP/$1.json" || return 1
  $PY -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(0 if j['agreement'] >= float(sys.argv[2]) else 1)" \
    "$TMP/$1.json" "$3"
}
size_pct() { $PY -c "import os,sys; print(int(100 * os.path.getsize(sys.argv[1]) / os.path.getsize(sys.argv[2])))" \
  "$TMP/$1/model.safetensors" "$M/model.safetensors"; }

quant int4 "$M" --method dynamic --bits 4 --quantize-embeddings
check "quantize int4" test $? -eq 0
"$QBERT" info "$TMP/int4" >"$TMP/int4.info"
check "info: int4 in groups of 128, 4-bit embeddings" grep -q \
  "precision    dynamic (activations per-token): 26 linears, 1 fp32, 25 int4 (groups of 128), 4.1 bits per linear weight (scales included); 4-bit word embeddings" \
  "$TMP/int4.info"
"$QBERT" info "$TMP/int4" --linears --json >"$TMP/int4.linears.json"
check "info --linears names each linear's format" test "$(json_get "$TMP/int4.linears.json" \
  '"%s %s %d" % (j["linears"][0]["format"], j["linears"][-1]["format"], len(j["linears"]))')" = "int4 fp32 26"
# 4 bits a weight plus an fp16 scale per 128: 4.125; the fp32 classifier 32
check "info --linears: bits count the scales" test "$(json_get "$TMP/int4.linears.json" \
  '"%g %g" % (j["linears"][0]["bits"], j["linears"][-1]["bits"])')" = "4.125 32"
check "int4 file is under 15% of FP32 ($(size_pct int4)%)" test "$(size_pct int4)" -lt 15
check "int4 agrees with FP32" agrees int4 "$M" 0.95
check "config: int4 format, group 128" test "$(json_get "$TMP/int4/config.json" \
  'j["quantization_config"]["weights"]["format"], j["quantization_config"]["weights"]["group_size"]')" = "int4 128"

quant int4wo "$M" --method weight-only --bits 4
check "int4 weight-only agrees with FP32" agrees int4wo "$M" 0.95
quant int3 "$M" --method dynamic --bits 3 --group-size 64
check "int3, groups of 64, runs" agrees int3 "$M" 0.5
quant int2 "$M" --method dynamic --bits 2 --weight-zero-point --group-size channel --quantize-embeddings --embedding-bits 2
check "int2 with zero points per row and 2-bit embeddings runs" agrees int2 "$M" 0.4
check "int2 writes zero points" grep -q '_zero_point' "$TMP/int2/model.safetensors"
check "  info: a scale per row, and the zero points in the bits" bash -c \
  "'$QBERT' info '$TMP/int2' | grep -q '25 int2 (a scale per row, zero points), 2.1 bits per linear weight'"
quant tern "$M" --method dynamic --bits ternary --quantize-embeddings
check "ternary runs" agrees tern "$M" 0.4
"$QBERT" info "$TMP/tern" >"$TMP/tern.info"
check "info: ternary is named ternary, 1.7 bits with its scales, not 2-bit" grep -q \
  "precision    dynamic (activations per-token): 26 linears, 1 fp32, 25 ternary (groups of 128), 1.7 bits per linear weight" \
  "$TMP/tern.info"
check "ternary file is under 8% of FP32 ($(size_pct tern)%)" test "$(size_pct tern)" -lt 8
quant km3 "$M" --method weight-only --bits 3 --codebook kmeans
check "kmeans3 never below its rows' grid" grep -q "0 linear(s) below the grid" "$TMP/km3.log"
check "kmeans3 runs" agrees km3 "$M" 0.5
check "  info: codebooks have no groups" bash -c "'$QBERT' info '$TMP/km3' | grep -q '25 kmeans3, 3.[0-9] bits'"
quant pt4 "$M" --method weight-only --bits 4 --granularity per-tensor
check "  info: per-tensor int4 has one scale per matrix" \
  bash -c "'$QBERT' info '$TMP/pt4' | grep -q 'int4-weight-only (one scale per matrix)'"
quant wo8e "$M" --method weight-only --bits 4 --quantize-embeddings --embedding-bits 8
check "weight-only with int8 embeddings runs" agrees wo8e "$M" 0.95
quant st4 "$M" --method static --bits 4 --calib "$DEV" --calib-n 16 --max-length 66
check "static int4 agrees with FP32" agrees st4 "$M" 0.9
echo '{"bert.encoder.layer.0.*": "int4", "bert.encoder.layer.1.*": "int2-static", "bert.pooler.dense": "kmeans3"}' \
  >"$TMP/map.json"
quant mix "$M" --method dynamic --precision-map "$TMP/map.json" --calib "$DEV" --calib-n 16 --max-length 66
check "an int8 model mixing int4, static int2 and kmeans3 by map" agrees mix "$M" 0.8
check "  info counts each format" bash -c "'$QBERT' info '$TMP/mix' | grep -q '1 fp32, 12 int8, 6 int4, 6 int2, 1 kmeans3'"
quant a4 "$A" --method dynamic --bits 4 --quantize-embeddings
check "albert int4 agrees with FP32" agrees a4 "$A" 0.9

# every kernel set: the integer parts agree bit for bit (test_kernels_lowbit);
# GELU's SIMD approximations differ from the scalar definition in the last
# bits, which can move a u8 rounding of the next layer's input: logits
# within 0.01
logits_match() { # logits_match MODEL: scalar, avx2 and avx512 (where the CPU has them)
  local isa
  for isa in scalar avx2 avx512; do
    QBERT_ISA=$isa "$QBERT" predict "$TMP/$1" "a gorgeous, witty, seductive movie." "dull and long" --json \
      >"$TMP/$1.$isa.jsonl" 2>/dev/null || rm -f "$TMP/$1.$isa.jsonl"
  done
  $PY - "$TMP/$1".*.jsonl <<'PYEOF'
import json, sys
runs = {f: [x for l in open(f) for x in json.loads(l)["logits"]] for f in sys.argv[1:]}
ref = runs[sys.argv[1]]
bad = [(f, v) for f, v in runs.items() if max(abs(a - b) for a, b in zip(v, ref)) > 0.01]
if bad: print("logits differ:", bad, "reference", ref, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
}
for m in int4 int4wo int3 int2 tern km3 st4 mix a4; do check "$m: kernel sets agree" logits_match "$m"; done

# bad options and files: one line, exit 1 (2 for usage), no OUT_DIR
"$QBERT" quantize "$M" -o "$TMP/b5" --method dynamic --bits 5 2>"$TMP/err"
check "--bits 5 is a usage error" test $? -eq 2 -a ! -e "$TMP/b5"
# options that would change nothing are refused, not recorded as if they did
while IFS='|' read -r what args pattern; do
  "$QBERT" quantize "$M" -o "$TMP/nop" $args 2>"$TMP/err"
  rc=$?
  check "$what is refused ($(head -c 120 "$TMP/err"))" test $rc -ne 0 -a ! -e "$TMP/nop"
  check "  and says why" grep -q -- "$pattern" "$TMP/err"
done <<'OPTS'
ternary zero points|--method dynamic --bits ternary --weight-zero-point|ternary weights have no zero points
k-means groups|--method weight-only --bits 4 --codebook kmeans --group-size 32|have no groups
int8 zero points|--method dynamic --weight-zero-point|int8 weights
embedding bits alone|--method dynamic --embedding-bits 4|--quantize-embeddings
fp16 with bits|--method fp16 --bits 4|16-bit weights
per-tensor groups|--method dynamic --bits 4 --granularity per-tensor --group-size 64|one scale
observer without static|--method dynamic --observer mse|--method static
symmetric per-token|--method dynamic --symmetric|each row's own range
symmetric weight-only|--method weight-only --bits 4 --symmetric|no integer activation grid
OPTS
"$QBERT" quantize "$M" -o "$TMP/g0" --method dynamic --bits 4 --group-size 0 2>"$TMP/err"
check "--group-size 0 is a usage error" test $? -eq 2 -a ! -e "$TMP/g0"
"$QBERT" quantize "$M" -o "$TMP/kd" --method dynamic --bits 4 --codebook kmeans 2>"$TMP/err"
check "kmeans needs weight-only" test $? -eq 1 -a ! -e "$TMP/kd"
check "  and says so" grep -q "weight-only" "$TMP/err"

expect_error() { # expect_error NAME PATTERN COMMAND...
  local name=$1 pattern=$2; shift 2
  timeout 60 "$@" >/dev/null 2>"$TMP/err"
  local rc=$? lines; lines=$(grep -c . "$TMP/err")
  if [ $rc -ne 1 ] || [ "$lines" -ne 1 ] || ! grep -qE "$pattern" "$TMP/err"; then
    fail "$name: rc=$rc, stderr ($lines lines): $(head -c 400 "$TMP/err")"
  else ok; fi
}
broken() { # broken NAME FROM: a copy of model FROM to break
  rm -rf "$TMP/$1"; cp -r "$TMP/$2" "$TMP/$1"; echo "$TMP/$1"
}
W=bert.encoder.layer.0.attention.self.query.weight
d=$(broken badlen int4)
retile "$TMP/int4/model.safetensors" "$d/model.safetensors" \
  "h['$W']['shape'] = [256, 127]; h['$W']['data_offsets'][1] -= 256"
expect_error "packed tensor of the wrong length" "model.safetensors: tensor '$W' has shape \[256, 127\]" "$QBERT" info "$d"
d=$(broken badgroup int4)
$PY - "$d/config.json" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1])); j["quantization_config"]["weights"]["group_size"] = 64
json.dump(j, open(sys.argv[1], "w"))
PYEOF
expect_error "scales that do not match the group size" "model.safetensors.*${W}_scale.*group" "$QBERT" info "$d"
d=$(broken badfmt int4)
sed -i 's/"bert.encoder.layer.0.attention.self.query": "int4"/"bert.encoder.layer.0.attention.self.query": "int5"/' \
  "$d/config.json"
expect_error "unknown format in modules" "$W.*unknown format 'int5'" "$QBERT" info "$d"
# the weights block against the format table and the tensors
edit_config() { # edit_config NAME FROM PYTHON: a copy of FROM whose quantization_config q the code edits
  local d; d=$(broken "$1" "$2")
  $PY - "$d/config.json" "$3" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1])); q = j["quantization_config"]; exec(sys.argv[2])
json.dump(j, open(sys.argv[1], "w"))
PYEOF
  echo "$d"
}
d=$(edit_config badwfmt int4 'q["weights"]["format"] = "int5"')
expect_error "unknown weights.format" "config.json: .*weights.format 'int5' is not a format" "$QBERT" info "$d"
d=$(edit_config badbits int4 'q["bits"] = 3')
expect_error "bits against weights.format" "config.json: .*bits is 3, but weights.format 'int4' has 4" "$QBERT" info "$d"
d=$(edit_config zpfalse int2 'q["weights"]["zero_points"] = False')
expect_error "zero points the config denies" "model.safetensors: '.*_zero_point' is stored but .*zero_points is false" \
  "$QBERT" info "$d"
d=$(edit_config zptrue int4 'q["weights"]["zero_points"] = True')
expect_error "zero points the config promises" "model.safetensors: '${W}_zero_point' is missing but .*zero_points is true" \
  "$QBERT" info "$d"
d=$(edit_config modx int4 'q["modules"]["bert.nonexistent"] = "int4"')
expect_error "a module the checkpoint lacks" "config.json: .*modules names 'bert.nonexistent', whose weight" "$QBERT" info "$d"
d=$(edit_config modi8 int4 'q["modules"]["bert.encoder.layer.0.attention.self.query"] = "int8"')
expect_error "a known format that is not packed" "$W' is packed \(U8\) but .* gives 'int8', a format stored as I8" \
  "$QBERT" info "$d"
d=$(broken badtrit tern)
$PY - "$TMP/tern/model.safetensors" "$d/model.safetensors" "$W" <<'PYEOF'
import json, struct, sys
data = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n]); data[8 + n + h[sys.argv[3]]["data_offsets"][0] + 5] = 250
open(sys.argv[2], "wb").write(data)
PYEOF
expect_error "a ternary byte beyond its 243 codes" "model.safetensors.*$W.*ternary" "$QBERT" info "$d"
d=$(broken badcb km3)
retile "$TMP/km3/model.safetensors" "$d/model.safetensors" \
  "h['${W}_codebook']['shape'] = [256, 4]; h['${W}_codebook']['data_offsets'][1] -= 2048"
expect_error "a codebook shorter than its codes" "model.safetensors: tensor '${W}_codebook' must be F16" "$QBERT" info "$d"
finish
