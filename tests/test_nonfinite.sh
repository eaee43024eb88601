#!/usr/bin/env bash
# Non-finite weights are refused at load, naming the tensor and the element,
# on every kernel set this CPU runs: a NaN or +Inf placed in each kind of
# tensor (word embedding, query, FFN, LayerNorm, classifier; an int8 scale,
# a low-bit FP16 scale, an int8 word-embedding scale, FP16 and BF16
# weights).  --allow-nonfinite loads them; quantize refuses them always.
set -u
. "$(dirname "$0")/lib.sh"
M=$SRC/models/bert-mini-sst2

# poke SRC_DIR DST_DIR TENSOR ELEMENT VALUE: DST_DIR is SRC_DIR with one
# element of a float tensor set to VALUE ("nan", "inf"); ELEMENT -1 is the last.
# DST_DIR = SRC_DIR rewrites the file in place (same inode, same size).
poke() {
  mkdir -p "$2"
  [ "$1" = "$2" ] || for f in "$1"/*; do [ "$(basename "$f")" = model.safetensors ] || ln -sf "$f" "$2/"; done
  $PY - "$1/model.safetensors" "$2/model.safetensors" "$3" "$4" "$5" <<'PYEOF'
import json, struct, sys
src, dst, name, elem, value = sys.argv[1:6]
data = bytearray(open(src, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
t = json.loads(data[8:8 + n])[name]
size = {"F32": 4, "F16": 2, "BF16": 2}[t["dtype"]]
begin, end = t["data_offsets"]
i = int(elem) % ((end - begin) // size)
bits = struct.pack("<f", float(value))
if t["dtype"] == "F16": bits = struct.pack("<e", float(value))
if t["dtype"] == "BF16": bits = bits[2:]
at = 8 + n + begin + i * size
data[at:at + size] = bits
open(dst, "wb").write(data)
PYEOF
}

# refused NAME PATTERN COMMAND...: exit 1, one stderr line matching PATTERN.
refused() {
  local name=$1 pattern=$2; shift 2
  timeout 120 "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$? lines; lines=$(grep -c . "$TMP/err")
  if [ $rc -ne 1 ] || [ "$lines" -ne 1 ] || ! grep -qE "$pattern" "$TMP/err"; then
    fail "$name: rc=$rc, stderr ($lines lines): $(head -c 400 "$TMP/err")"
  else
    ok
  fi
}

ISAS=""
for isa in scalar avx2 avx512; do
  if QBERT_ISA=$isa "$QBERT" info "$M" >/dev/null 2>&1; then ISAS="$ISAS $isa"; fi
done
echo "kernel sets:$ISAS"

# Stamps (lib.sh points QBERT_CACHE_DIR at $TMP/cache): a file found finite
# is stamped unless it changed in the last 10 s, so the in-place case at the
# end needs a copy made now and loaded later.
OLD=$TMP/old
mkdir -p "$OLD" && cp "$M"/* "$OLD/"
OLD_MADE=$(date +%s)
stamps() { find "$QBERT_CACHE_DIR/checked" -name "finite1-*-$(printf %x "$(stat -c %i "$1")")-*" 2>/dev/null | wc -l; }

# Quantized models to poke: int8 with int8 word embeddings, int4, fp16, bf16.
Q=$TMP/q
mkdir -p "$Q"
"$QBERT" quantize "$M" -o "$Q/int8" --method dynamic --quantize-embeddings >/dev/null 2>&1 || fail "quantize int8"
"$QBERT" quantize "$M" -o "$Q/int4" --method weight-only --bits 4 >/dev/null 2>&1 || fail "quantize int4"
"$QBERT" quantize "$M" -o "$Q/fp16" --method fp16 >/dev/null 2>&1 || fail "quantize fp16"
"$QBERT" quantize "$M" -o "$Q/bf16" --method bf16 >/dev/null 2>&1 || fail "quantize bf16"

L0=bert.encoder.layer.0
L1=bert.encoder.layer.1
# model|tensor|element: each kind of float tensor, first, middle and last
# elements (the last one lands in the vector loops' tails).
CASES="
$M|bert.embeddings.word_embeddings.weight|123457
$M|$L0.attention.self.query.weight|0
$M|$L1.intermediate.dense.weight|-1
$M|$L0.attention.output.LayerNorm.weight|-1
$M|classifier.weight|1
$Q/int8|$L0.attention.self.query.weight_scale|-1
$Q/int8|bert.embeddings.word_embeddings.weight_scale|777
$Q/int4|$L1.output.dense.weight_scale|5
$Q/fp16|$L0.attention.self.key.weight|-1
$Q/bf16|$L1.attention.output.dense.weight|9
"
k=0
for c in $CASES; do
  IFS='|' read -r src tensor elem <<<"$c"
  for value in nan inf; do
    k=$((k + 1))
    d=$TMP/case$k
    poke "$src" "$d" "$tensor" "$elem" "$value" || { fail "poke $tensor"; continue; }
    want=$([ $value = nan ] && echo NaN || echo '\+Inf')
    for isa in $ISAS; do
      refused "$isa $tensor $value" \
        "^qbert info: error: .*/case$k/model.safetensors: tensor '$tensor' holds $want at element [0-9]+$" \
        env QBERT_ISA=$isa "$QBERT" info "$d"
    done
  done
done

# The element is named exactly: NaN at element 4242 of the query.
d=$TMP/exact
poke "$M" "$d" "$L0.attention.self.query.weight" 4242 -inf
refused "exact element" "tensor '$L0.attention.self.query.weight' holds -Inf at element 4242$" "$QBERT" info "$d"

# The opt-out loads it (any command, any position); quantize still refuses.
check "--allow-nonfinite info" "$QBERT" info "$d" --allow-nonfinite >/dev/null 2>&1
check "--allow-nonfinite first" "$QBERT" --allow-nonfinite info "$d" >/dev/null 2>&1
check "--allow-nonfinite predict" "$QBERT" predict "$d" --allow-nonfinite "a fine film" >/dev/null 2>&1
# and what a non-finite weight does to the outputs shows: no activation's
# clamp turns the NaNs it makes into plausible logits
for isa in $ISAS; do
  check "--allow-nonfinite logits are not numbers ($isa)" test "$(QBERT_ISA=$isa "$QBERT" predict "$d" \
    --allow-nonfinite "a fine film" --json --fields logits 2>/dev/null)" = '{"logits": [null, null]}'
done
refused "quantize with --allow-nonfinite" "holds -Inf at element 4242" \
  "$QBERT" quantize "$d" -o "$TMP/never" --method dynamic --allow-nonfinite
check "quantize wrote nothing" test ! -e "$TMP/never"
refused "quantize" "holds -Inf at element 4242" "$QBERT" quantize "$d" -o "$TMP/never" --method fp16
refused "predict" "holds -Inf" "$QBERT" predict "$d" "a fine film"

# A finite weight past FP16's range: fp16, codebooks and a 2-bit grid's scale would
# write it as an infinity; quantize refuses instead, naming the tensor.
d=$TMP/huge
poke "$M" "$d" "$L0.attention.self.query.weight" 389 2e5
for how in "--method fp16" "--method weight-only --bits 4 --codebook kmeans" "--method dynamic --bits 2"; do
  refused "quantize $how, a weight of 2e5" "query.weight[_a-z]*' would hold an infinity \\(F16 stops at 65504\\)" \
    "$QBERT" quantize "$d" -o "$TMP/never" $how
done
check "... nothing written" test ! -e "$TMP/never"
check "bf16 holds it" "$QBERT" quantize "$d" -o "$TMP/huge-bf16" --method bf16

# A file changed just now is checked but not stamped (the copy is made here,
# not with OLD, so the cases above cannot age it past 10 s on a slow machine);
# QBERT_CACHE_DIR= writes nothing.
NEW=$TMP/new
mkdir -p "$NEW" && cp "$M"/* "$NEW/"
check "fresh copy loads" "$QBERT" info "$NEW" >/dev/null 2>&1
check "fresh copy not stamped" test "$(stamps "$NEW/model.safetensors")" -eq 0
QBERT_CACHE_DIR= HOME=$TMP/home "$QBERT" info "$M" >/dev/null 2>&1
check "empty QBERT_CACHE_DIR writes nothing" test ! -e "$TMP/home"
HOME=$TMP/home XDG_CACHE_HOME= env -u QBERT_CACHE_DIR "$QBERT" info "$M" >/dev/null 2>&1
check "a cache that cannot be written is no error" env QBERT_CACHE_DIR=/dev/null/cache "$QBERT" info "$M" >/dev/null 2>&1
check "default cache: ~/.cache/qbert/checked" test "$(ls "$TMP/home/.cache/qbert/checked" | wc -l)" -eq 1

# A stamp is trusted: one forged for a NaN file (its id, as qbert names it)
# skips the read, which shows the read is skipped for a stamped file.
d=$TMP/forged
poke "$M" "$d" "$L0.attention.self.query.weight" 7 nan
f=$d/model.safetensors
mkdir -p "$QBERT_CACHE_DIR/checked"
touch "$QBERT_CACHE_DIR/checked/$($PY -c 'import os, sys; s = os.stat(sys.argv[1]); print("finite1-%x-%x-%d-%d-%d"
    % (s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns))' "$f")"
check "forged stamp skips the read" "$QBERT" info "$d" >/dev/null 2>&1

# An old file is stamped at its first load, and a write in place (same
# inode, same size) misses the stamp: the NaN is found.
sleep $((OLD_MADE + 11 - $(date +%s))) 2>/dev/null
check "old copy loads" "$QBERT" info "$OLD" >/dev/null 2>&1
check "old copy stamped once" test "$(stamps "$OLD/model.safetensors")" -eq 1
check "stamped copy loads again" "$QBERT" info "$OLD" >/dev/null 2>&1
poke "$OLD" "$OLD" "$L1.intermediate.dense.weight" 99 nan
refused "write in place after the stamp" "tensor '$L1.intermediate.dense.weight' holds NaN at element 99$" \
  "$QBERT" info "$OLD"

finish
