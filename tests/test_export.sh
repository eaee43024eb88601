#!/usr/bin/env bash
# qbert export: formats ONNX cannot express are refused naming the layer;
# the FP32 export passes onnx.checker (Debian's python3-onnx) and ONNX
# Runtime (onnxruntime-node, bench/onnx/package.json) gives qbert's logits
# within 1e-4 on SST-2 dev sentences in padded batches, as it does for int4
# weights (MatMulNBits, with zero points), a bare encoder's pooled
# embeddings, RoBERTa, XLM-R and ELECTRA heads and masked-LM logits (random
# checkpoints); the dynamic int8 export, ORT's own dynamic form, agrees with
# qbert's int8 predictions.
set -u
. "$(dirname "$0")/lib.sh"
M=$SRC/models/bert-mini-sst2
ORT_DIR=$SRC/bench/onnx

check "export --help" bash -c "'$QBERT' export --help | grep -q 'usage: qbert export'"
check "export --help: token_type_ids always required" bash -c "'$QBERT' export --help | grep -q 'feed zeros'"
check "export --help: bf16 exports differ from AVX512-BF16 kernels" bash -c "'$QBERT' export --help | grep -q 'AVX512-BF16'"
usage_rc() { "$QBERT" export "$@" 2>/dev/null; test $? -eq 2; }
check "no -o: usage error" usage_rc "$M"
check "opset 9: usage error" usage_rc "$M" -o "$TMP/x.onnx" --opset 9
expect_error "unwritable" "cannot create" "$QBERT" export "$M" -o "$TMP/no/such/dir/m.onnx"

# What ONNX cannot say: each format's refusal names the first layer and why;
# an existing output stays as it was.
echo old >"$TMP/keep.onnx"
for spec in "int3|--method weight-only --bits 3|3-bit weights have no ONNX operator" \
            "ternary|--method dynamic --bits ternary|ternary weights have no ONNX operator" \
            "kmeans|--method weight-only --bits 4 --codebook kmeans|k-means codebooks are not on a grid" \
            "int4g48|--method weight-only --bits 4 --group-size 48|MatMulNBits takes groups of 16, 32, 64, 128 or 256"; do
  IFS='|' read -r name flags why <<<"$spec"
  # shellcheck disable=SC2086
  "$QBERT" quantize "$M" -o "$TMP/$name" $flags >/dev/null 2>&1 || fail "quantize $name"
  expect_error "refuse $name" "^qbert export: error: $TMP/$name: layer 'bert\.encoder\.layer\.0\.attention\.self\.query' is [a-z0-9-]+[^:]*: $why" \
    "$QBERT" export "$TMP/$name" -o "$TMP/keep.onnx"
done
# ONNX Runtime loads MatMulNBits in blocks of 16 to 256 only: larger groups
# (bert-mini's FFN output reads 1024 inputs) are refused up front.
for spec in "int4ch|--group-size channel|1024" "int4g512|--group-size 512|512" \
            "int4pt|--granularity per-tensor|1024"; do
  IFS='|' read -r name flags group <<<"$spec"
  # shellcheck disable=SC2086
  "$QBERT" quantize "$M" -o "$TMP/$name" --method weight-only --bits 4 $flags >/dev/null 2>&1 || fail "quantize $name"
  expect_error "refuse $name" "^qbert export: error: $TMP/$name: layer 'bert\.encoder\.layer\.0\.output\.dense' is [^:]* in groups of $group inputs: MatMulNBits takes groups of 16, 32, 64, 128 or 256 inputs" \
    "$QBERT" export "$TMP/$name" -o "$TMP/keep.onnx"
done
check "a refused export leaves the old file" test "$(cat "$TMP/keep.onnx")" = old
check "no temporary file left" test -z "$(ls "$TMP" | grep '\.tmp')"
# An existing -o that is not a regular file is refused, not renamed over.
mkfifo "$TMP/fifo"
expect_error "FIFO output" "^qbert export: error: $TMP/fifo: is a FIFO, not a file" "$QBERT" export "$M" -o "$TMP/fifo"
check "the FIFO stays a FIFO" test -p "$TMP/fifo"

have_ort=yes
$PY -c 'import onnx' 2>/dev/null || have_ort="no python3-onnx"
[ -d "$ORT_DIR/node_modules/onnxruntime-node" ] && command -v node >/dev/null ||
  have_ort="no onnxruntime-node (cd bench/onnx && npm ci --ignore-scripts)"
if [ "$have_ort" != yes ]; then
  if [ "${CI:-}" = "true" ]; then fail "$have_ort (CI=true requires it: scripts/install-deps.sh --test)"; finish; exit; fi
  echo "skipped the ONNX Runtime checks: $have_ort"
  finish
  exit $([ "$failed" -eq 0 ] && echo 77 || echo 1)
fi
need_shared data/sst2/dev.tsv

N=48
[ -n "$SANITIZE" ] && N=12
tail -n +2 "$SHARED/data/sst2/dev.tsv" | cut -f1 | head -n $N >"$TMP/texts.txt"
ort_field() { # ort_field MODEL.onnx PRED.jsonl FIELD
  node "$ORT_DIR/ort_check.mjs" --model "$1" --qbert "$2" --batch 4 --threads 2 >"$TMP/ort.json" &&
    json_get "$TMP/ort.json" "j['$3']"
}
checker() { $PY -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)' "$1"; }

close() { # close WHAT MODEL_DIR [embed]: exported, checked, ORT within 1e-4 of qbert
  local f=$TMP/$1
  "$QBERT" export "$2" -o "$f.onnx"
  check "$1: onnx.checker" checker "$f.onnx"
  if [ "${3:-}" = embed ]; then "$QBERT" embed "$2" --input "$TMP/texts.txt" --threads 2 >"$f.jsonl"
  else "$QBERT" predict "$2" --input "$TMP/texts.txt" --json --threads 2 >"$f.jsonl"; fi
  local diff; diff=$(ort_field "$f.onnx" "$f.jsonl" max_abs_diff)
  check "$1: ORT within 1e-4 of qbert (got $diff)" $PY -c "import sys; sys.exit(not float('$diff') < 1e-4)"
}
close fp32 "$M"
"$QBERT" quantize "$M" -o "$TMP/int4" --method weight-only --bits 4 --group-size 32 --weight-zero-point >/dev/null
close int4 "$TMP/int4"
check "int4: MatMulNBits" grep -q MatMulNBits "$TMP/int4.onnx"

# A bare encoder pooling mean + Normalize.
B=$TMP/bare
bare_encoder "$M" "$B" '{"word_embedding_dimension": 256, "pooling_mode_mean_tokens": true}'
close bare "$B" embed

"$QBERT" quantize "$M" -o "$TMP/dyn" --method dynamic >/dev/null
"$QBERT" export "$TMP/dyn" -o "$TMP/dyn.onnx"
check "int8 dynamic: onnx.checker" checker "$TMP/dyn.onnx"
check "int8 dynamic: ORT's form" grep -q MatMulInteger "$TMP/dyn.onnx"
"$QBERT" predict "$TMP/dyn" --input "$TMP/texts.txt" --json --threads 2 >"$TMP/dyn.jsonl"
agree=$(ort_field "$TMP/dyn.onnx" "$TMP/dyn.jsonl" agreement)
diff=$(json_get "$TMP/ort.json" "j['max_abs_diff']")
# per-tensor inputs in ORT against qbert's per-token: close, not equal
check "int8 dynamic: ORT agrees with qbert (got $agree, logits within $diff)" \
  $PY -c "import sys; sys.exit(not (float('$agree') >= 0.97 and float('$diff') < 0.3))"

# Random checkpoints of the other families (../shared/tools): RoBERTa and
# XLM-R number positions from pad_token_id + 1 (a <pad> inside a text keeps
# pad_token_id), ELECTRA's sequence head is dense, exact GELU, out_proj.
need_shared tools/make_random_checkpoint.py
rand() { $PY "$SHARED/tools/make_random_checkpoint.py" "$@" >/dev/null || fail "make_random_checkpoint $*"; }
cp "$TMP/texts.txt" "$TMP/texts.keep"
echo "a <pad> film <pad> that is good" >>"$TMP/texts.txt"
rand roberta-small-odd "$TMP/roberta" --head seq --labels 2
close roberta "$TMP/roberta"
cp -r "$TMP/roberta" "$TMP/xlmr"
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['model_type']='xlm-roberta'
c['architectures']=['XLMRobertaForSequenceClassification']; json.dump(c, open(sys.argv[1],'w'))" "$TMP/xlmr/config.json"
close xlmr "$TMP/xlmr"
rand roberta-small-odd "$TMP/roberta-tok"
close roberta-token "$TMP/roberta-tok"
rand roberta-small-odd "$TMP/roberta-base" --head base
close roberta-base "$TMP/roberta-base" embed
cp "$TMP/texts.keep" "$TMP/texts.txt"
rand electra-small "$TMP/electra" --head seq --labels 2
close electra "$TMP/electra"
# Masked-LM heads: logits over the vocabulary for every token, against
# fill-mask's at the masks.
mlm() { # mlm WHAT MODEL_DIR MASK
  local f=$TMP/$1
  "$QBERT" export "$2" -o "$f.onnx" || { fail "$1: export"; return; }
  check "$1: onnx.checker" checker "$f.onnx"
  "$QBERT" fill-mask "$2" --json --threads 2 "the film is $3 ." "a $3 , $3 and often affecting journey ." \
    "it 's $3" >"$f.jsonl"
  local diff; diff=$(ort_field "$f.onnx" "$f.jsonl" max_abs_diff)
  check "$1: ORT within 1e-4 of qbert (got $diff)" $PY -c "import sys; sys.exit(not float('$diff') < 1e-4)"
}
rand bert-mlm-mini "$TMP/bert-mlm"
mlm bert-mlm "$TMP/bert-mlm" "[MASK]"
rand roberta-small-odd "$TMP/roberta-mlm" --head mlm
mlm roberta-mlm "$TMP/roberta-mlm" "<mask>"
finish
