#!/usr/bin/env bash
# The malformed-input corpus: each case must end with exit code 1, a single
# error line on stderr that names the file and the problem, no crash and no
# hang.  Broken checkpoints are made from the bundled model at test time.
set -u
. "$(dirname "$0")/lib.sh"
M=$SRC/models/bert-mini-sst2

# A copy of the model whose files are links, so each case replaces one file.
model_copy() {
  local d=$TMP/$1
  mkdir -p "$d"
  for f in config.json model.safetensors vocab.txt tokenizer_config.json; do ln -sf "$M/$f" "$d/$f"; done
  echo "$d"
}

# Rewrites model.safetensors' header through Python statements over `h`.
with_header() { # with_header DIR PYTHON_STATEMENTS
  rm -f "$1/model.safetensors"
  rewrite_header "$M/model.safetensors" "$1/model.safetensors" "$2"
}

W=bert.encoder.layer.0.attention.self.query.weight

d=$(model_copy truncated); rm "$d/model.safetensors"; head -c 100000 "$M/model.safetensors" >"$d/model.safetensors"
expect_error "truncated safetensors" "model.safetensors.*(beyond|outside|past|end)" "$QBERT" info "$d"

d=$(model_copy tiny); rm "$d/model.safetensors"; printf 'abc' >"$d/model.safetensors"
expect_error "file shorter than the header length" "model.safetensors" "$QBERT" info "$d"

d=$(model_copy hdrlen); rm "$d/model.safetensors"
$PY -c 'import struct,sys; sys.stdout.buffer.write(struct.pack("<Q", 1<<40) + b"{}")' >"$d/model.safetensors"
expect_error "header length beyond the file" "model.safetensors.*header" "$QBERT" info "$d"

d=$(model_copy overlap)
with_header "$d" "h['$W']['data_offsets'] = h['bert.embeddings.LayerNorm.bias']['data_offsets'][:1] + [h['bert.embeddings.LayerNorm.bias']['data_offsets'][0] + 262144]"
expect_error "overlapping offsets" "model.safetensors.*overlap" "$QBERT" info "$d"

d=$(model_copy range)
with_header "$d" "b=h['$W']['data_offsets'][0]; h['$W']['data_offsets'] = [b + 10**9, b + 10**9 + 262144]"
expect_error "offsets out of range" "model.safetensors.*$W" "$QBERT" info "$d"

d=$(model_copy dtype)
with_header "$d" "h['$W']['dtype'] = 'F64'"
expect_error "unknown dtype" "model.safetensors.*F64" "$QBERT" info "$d"

d=$(model_copy shape)
with_header "$d" "h['$W']['shape'] = [256, 255]"
expect_error "shape/size mismatch" "model.safetensors.*$W.*bytes" "$QBERT" info "$d"

d=$(model_copy missing); rm "$d/model.safetensors"
retile "$M/model.safetensors" "$d/model.safetensors" "del h['bert.pooler.dense.bias']"
expect_error "missing tensor" "model.safetensors: missing tensor 'bert.pooler.dense.bias'" "$QBERT" info "$d"

d=$(model_copy wrongdtype)
with_header "$d" "h['$W']['dtype'] = 'I32'"
expect_error "integer weights" "model.safetensors.*$W.*I32" "$QBERT" info "$d"

d=$(model_copy badjson); rm "$d/config.json"; printf '{"model_type": "bert", "hidden_size": 256,,}' >"$d/config.json"
expect_error "bad JSON config" "config.json: invalid JSON at column 43: " "$QBERT" info "$d"
d=$(model_copy badjson2); rm "$d/config.json"; sed 's/"hidden_size": 256,/"hidden_size": 256,,/' "$M/config.json" >"$d/config.json"
expect_error "bad JSON config, line and column" "config.json: invalid JSON at line 9, column 22: " "$QBERT" info "$d"

# A repeated key: the last value counts, as in Python's json and Hugging Face.
d=$(model_copy dupkey); rm "$d/config.json"
sed 's/"model_type": "bert",/"model_type": "bert", "hidden_act": "swish",/' "$M/config.json" >"$d/config.json"
expect_error "repeated key: the last value counts" "config.json: hidden_act \"swish\"" "$QBERT" info "$d"
d=$(model_copy dupkey2); rm "$d/config.json"
sed 's/"hidden_act": "gelu",/"hidden_act": "swish",/; s/"model_type": "bert",/"model_type": "bert", "hidden_act": "gelu",/' \
  "$M/config.json" >"$d/config.json"
check "repeated key: an earlier value is overridden" test "$("$QBERT" info "$d" --json 2>&1 | json_get /dev/stdin 'j["hidden_act"]')" = gelu

d=$(model_copy epsstr); rm "$d/config.json"; sed 's/"layer_norm_eps": 1e-12/"layer_norm_eps": "0.1"/' "$M/config.json" >"$d/config.json"
expect_error "layer_norm_eps a string, not a silent 1e-12" 'config.json: "layer_norm_eps" must be a number' "$QBERT" info "$d"
d=$(model_copy labelnul); rm "$d/config.json"; sed 's/"1": "positive"/"1": "pos\\u0000itive"/' "$M/config.json" >"$d/config.json"
expect_error "a NUL in a label, not a label printed cut" 'config.json: id2label..1.. holds a NUL character' "$QBERT" info "$d"
d=$(model_copy mtype); rm "$d/config.json"; sed 's/"model_type": "bert"/"model_type": "gpt2"/' "$M/config.json" >"$d/config.json"
expect_error "unknown model_type" "config.json: model_type \"gpt2\" is not supported" "$QBERT" info "$d"

d=$(model_copy act); rm "$d/config.json"; sed 's/"hidden_act": "gelu"/"hidden_act": "swish"/' "$M/config.json" >"$d/config.json"
expect_error "unknown activation" "config.json: hidden_act \"swish\"" "$QBERT" info "$d"

d=$(model_copy relpos); rm "$d/config.json"
sed 's/"position_embedding_type": "absolute"/"position_embedding_type": "relative_key"/' "$M/config.json" >"$d/config.json"
expect_error "relative position embeddings" "config.json: position_embedding_type \"relative_key\" is not supported" \
  "$QBERT" info "$d"

d=$(model_copy novocab); rm "$d/vocab.txt"
expect_error "missing vocab" "no tokenizer.json, vocab.txt or spiece.model" "$QBERT" info "$d"

d=$(model_copy badvocab); rm "$d/vocab.txt"; printf 'hello\nworld\n' >"$d/vocab.txt"
expect_error "vocab without specials" "vocab.txt.*\[(CLS|SEP|UNK)\]" "$QBERT" info "$d"

# vocab.txt as HF's load_vocab reads it: UTF-8 only, universal newlines, and
# trailing blank lines as a "" token no text produces
d=$(model_copy vocablatin1); rm "$d/vocab.txt"; sed '7593s/^hello$/h\xe9llo/' "$M/vocab.txt" >"$d/vocab.txt"
expect_error "vocab line not UTF-8" "vocab.txt: line 7593 is not valid UTF-8" "$QBERT" info "$d"
want=$("$QBERT" predict "$M" "hello world" --json --fields input_ids)
d=$(model_copy vocabblank); rm "$d/vocab.txt"; { cat "$M/vocab.txt"; printf '\n\n'; } >"$d/vocab.txt"
check "vocab with trailing blank lines" [ "$("$QBERT" predict "$d" "hello world" --json --fields input_ids 2>&1)" = "$want" ]
d=$(model_copy vocabcr); rm "$d/vocab.txt"; tr '\n' '\r' <"$M/vocab.txt" >"$d/vocab.txt"
check "vocab with CR line ends" [ "$("$QBERT" predict "$d" "hello world" --json --fields input_ids 2>&1)" = "$want" ]

# the slow tokenizer's other files: special and added tokens as transformers'
# tokenize() splits them out (lowercased text with do_lower_case), else refused
ids() { "$QBERT" predict "$1" "$2" --json --fields input_ids 2>&1; }
d=$(model_copy addspecial); rm "$d/tokenizer_config.json"
printf '{"do_lower_case": true, "additional_special_tokens": ["[unused1]"]}' >"$d/tokenizer_config.json"
check "additional_special_tokens split out" [ "$(ids "$d" "a[unused1]b A[UNUSED1]B")" = '{"input_ids": [101, 1037, 2, 1038, 1037, 2, 1038, 102]}' ]
d=$(model_copy addedjson); printf '{"covid19": 1}' >"$d/added_tokens.json"
check "added_tokens.json honoured" [ "$(ids "$d" "covid19 COVID19")" = '{"input_ids": [101, 1, 1, 102]}' ]
printf '{"covid19": 40000}' >"$d/added_tokens.json"
expect_error "added token past the vocabulary" "added_tokens.json: added token \"covid19\" has id 40000, past vocab.txt's 30522 tokens: not supported" "$QBERT" info "$d"
d=$(model_copy sepother); printf '{"sep_token": "[unused5]"}' >"$d/special_tokens_map.json"
expect_error "another sep_token" "special_tokens_map.json: sep_token \"\[unused5\]\" is not supported" "$QBERT" info "$d"
d=$(model_copy lowerint); rm "$d/tokenizer_config.json"; printf '{"do_lower_case": 0}' >"$d/tokenizer_config.json"
expect_error "do_lower_case 0, not the default true" 'tokenizer_config.json: "do_lower_case" must be true or false' "$QBERT" info "$d"
d=$(model_copy addmissing); rm "$d/tokenizer_config.json"; printf '{"additional_special_tokens": ["<ent>"]}' >"$d/tokenizer_config.json"
expect_error "additional special token not in the vocab" "tokenizer_config.json: additional_special_tokens \"<ent>\" is not in vocab.txt" "$QBERT" info "$d"

# tokenizer.json (it wins over vocab.txt): malformed, an unsupported part, bad merges
d=$(model_copy tjbroken); printf '{"model": {"type": "WordPiece", "vocab": {' >"$d/tokenizer.json"
expect_error "truncated tokenizer.json" "tokenizer.json: invalid JSON" "$QBERT" info "$d"
d=$(model_copy tjunigram); printf '{"model": {"type": "Chars", "vocab": {"a": 0}}}' >"$d/tokenizer.json"
expect_error "unsupported tokenizer model" "tokenizer.json: model Chars is not supported" "$QBERT" info "$d"
d=$(model_copy tjnorm)
printf '{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0}}, "normalizer": {"type": "Fancy"}, "pre_tokenizer": {"type": "BertPreTokenizer"}}' >"$d/tokenizer.json"
expect_error "unsupported normalizer" "tokenizer.json: normalizer Fancy .*not supported" "$QBERT" info "$d"
d=$(model_copy tjmerges)
printf '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", "b z"]}, "pre_tokenizer": {"type": "ByteLevel"}}' >"$d/tokenizer.json"
expect_error "merge of an unknown token" "tokenizer.json: model.merges\\[1\\] refers to a token not in the vocab" "$QBERT" info "$d"
d=$(model_copy tjvocab); printf '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 7}, "merges": []}}' >"$d/tokenizer.json"
expect_error "vocab ids with a gap" "tokenizer.json: model.vocab" "$QBERT" info "$d"
# a deleted entry: the gap it leaves, or the merge whose result it was, is named
printf '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "<mask>": 3}, "merges": []}}' >"$d/tokenizer.json"
expect_error "vocab id gap named" "tokenizer.json: model.vocab has no token with id 2 " "$QBERT" info "$d"
printf '{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2}, "merges": ["a b"]}}' >"$d/tokenizer.json"
expect_error "merge result missing" "tokenizer.json: model.merges\\[0\\]'s result ab is not in the vocab" "$QBERT" info "$d"
d=$(model_copy tjpost)
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}, "post_processor": {"type": "Mystery"}}' >"$d/tokenizer.json"
expect_error "unsupported post-processor" "tokenizer.json: post_processor Mystery is not supported" "$QBERT" info "$d"

d=$(model_copy nomodel); rm "$d/model.safetensors"
expect_error "missing weights" "model.safetensors not found" "$QBERT" info "$d"

d=$(model_copy legacy); rm "$d/model.safetensors"; touch "$d/pytorch_model.bin"
expect_error "legacy pytorch_model.bin" "pytorch_model.bin.*convert" "$QBERT" info "$d"

d=$(model_copy sharded); rm "$d/model.safetensors"; echo '{"weight_map": {}}' >"$d/model.safetensors.index.json"
expect_error "sharded weights" "sharded \(model.safetensors.index.json\)" "$QBERT" info "$d"

expect_error "no such model dir" "does-not-exist/config.json" "$QBERT" info "$TMP/does-not-exist"

if [ -e "$SHARED/models/albert-mini-sst2/spiece.model" ]; then
  d=$TMP/albert; mkdir -p "$d"
  for f in config.json model.safetensors tokenizer_config.json; do ln -sf "$SHARED/models/albert-mini-sst2/$f" "$d/$f"; done
  head -c 5000 "$SHARED/models/albert-mini-sst2/spiece.model" >"$d/spiece.model"
  expect_error "corrupt spiece.model" "spiece.model" "$QBERT" info "$d"
fi

# Tensors must tile the data section: a header length field one short
# (the header still parses, one pad space less) shifts every tensor a byte.
d=$(model_copy hdrlen1); rm "$d/model.safetensors"
$PY - "$M/model.safetensors" "$d/model.safetensors" <<'PYEOF'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", data[:8])[0]
assert data[8 + n - 1:8 + n] == b" ", "the header has no padding to cut"
open(sys.argv[2], "wb").write(struct.pack("<Q", n - 1) + data[8:])
PYEOF
expect_error "header length off by one" "model.safetensors: tensors end at byte [0-9]+ of the [0-9]+-byte data section: the header length" "$QBERT" info "$d"
d=$(model_copy gap)
with_header "$d" "h['classifier.bias']['data_offsets'] = [x + 4 for x in h['classifier.bias']['data_offsets']]"
expect_error "gap between tensors" "model.safetensors: tensor 'classifier.bias': data begins at [0-9]+, leaving a gap of 4 bytes" "$QBERT" info "$d"

# Every tensor is used, or named.  with_extra DIR SPEC...: model.safetensors
# with tensors NAME:DTYPE:N (N elements) appended to the data section.
with_extra() {
  local d=$1; shift
  rm -f "$d/model.safetensors"
  $PY - "$M/model.safetensors" "$d/model.safetensors" "$@" <<'PYEOF'
import json, struct, sys
src, dst, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n]); body = bytearray(data[8 + n:])
for spec in specs:
    name, dtype, count = spec.split(":")
    size = {"F32": 4, "I64": 8}[dtype] * int(count)
    h[name] = {"dtype": dtype, "shape": [int(count)], "data_offsets": [len(body), len(body) + size]}
    body += bytes(size)
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + body)
PYEOF
}
d=$(model_copy mlm)
with_extra "$d" cls.predictions.bias:F32:8 cls.predictions.transform.dense.bias:F32:8
check "unused tensors load" "$QBERT" info "$d" >/dev/null 2>"$TMP/err"
check "unused tensors: one warning naming them" grep -qx "qbert info: warning: .*/mlm/model.safetensors: 2 tensors unused: cls.predictions.bias, cls.predictions.transform.dense.bias" "$TMP/err"
check "unused tensors: one line" test "$(grep -c . "$TMP/err")" -eq 1
d=$(model_copy many)
with_extra "$d" x.a:F32:1 x.b:F32:1 x.c:F32:1 x.d:F32:1 x.e:F32:1 x.f:F32:1
"$QBERT" info "$d" >/dev/null 2>"$TMP/err"
check "many unused tensors: the list is cut" grep -qx "qbert info: warning: .*: 6 tensors unused: x.a, x.b, x.c, x.d, ..." "$TMP/err"
d=$(model_copy posids)
with_extra "$d" bert.embeddings.position_ids:I64:512
"$QBERT" info "$d" >/dev/null 2>"$TMP/err"
check "position_ids buffer: no warning (Hugging Face ignores it too)" test ! -s "$TMP/err"
d=$(model_copy layers); rm "$d/config.json"; sed 's/"num_hidden_layers": 4/"num_hidden_layers": 3/' "$M/config.json" >"$d/config.json"
expect_error "checkpoint with more layers than config.json" "model.safetensors: tensor 'bert.encoder.layer.3.[a-zA-Z.]+' is for layer 3, but config.json has num_hidden_layers 3" "$QBERT" info "$d"

# quantization_config must agree with the tensors.  qmix DIR CONFIG_FROM
# TENSORS_FROM [PYTHON]: config.json of one model (edited by PYTHON
# statements over its dict `c`) over the tensors of another.
Q=$TMP/quantized
mkdir -p "$Q"
"$QBERT" quantize "$M" -o "$Q/dyn" --method dynamic >/dev/null 2>&1 || fail "quantize dynamic"
"$QBERT" quantize "$M" -o "$Q/fp16" --method fp16 >/dev/null 2>&1 || fail "quantize fp16"
qmix() {
  local d; d=$(model_copy "$1"); rm "$d/config.json" "$d/model.safetensors"
  ln -s "$3/model.safetensors" "$d/model.safetensors"
  $PY - "$2/config.json" "$d/config.json" "${4:-pass}" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(c, open(sys.argv[2], "w"), indent=2)
PYEOF
  echo "$d"
}
QW=bert.encoder.layer.0.attention.self.query
d=$(qmix qdynf32 "$Q/dyn" "$M")
expect_error "dynamic config over FP32 tensors" "qdynf32/config.json: quantization_config.modules gives '$QW' format 'int8', but model.safetensors stores '$QW.weight' as F32" "$QBERT" info "$d"
d=$(qmix qdynf32nomod "$Q/dyn" "$M" "del c['quantization_config']['modules']")
expect_error "dynamic config (no modules) over FP32 tensors" "qdynf32nomod/config.json: quantization_config says method dynamic, but every linear weight in model.safetensors is unquantized" "$QBERT" info "$d"
d=$(qmix qbits4 "$Q/dyn" "$Q/dyn" "c['quantization_config']['bits'] = 4")
expect_error "bits 4 over full-range int8" "qbits4/config.json: quantization_config.bits is 4, but '[a-z0-9_.]+\.weight' holds int8 value -?[0-9]+ \(a 4-bit grid is -8..7\)" "$QBERT" info "$d"
d=$(qmix qf16int8 "$Q/dyn" "$Q/fp16")
expect_error "FP16 tensors under an int8 config" "qf16int8/config.json: quantization_config.modules gives '$QW' format 'int8', but model.safetensors stores '$QW.weight' as F16" "$QBERT" info "$d"
d=$(qmix qf16int8nomod "$Q/dyn" "$Q/fp16" "del c['quantization_config']['modules']")
expect_error "FP16 tensors under an int8 config (no modules)" "qf16int8nomod/config.json: quantization_config method dynamic contradicts '[a-z0-9_.]+\.weight', stored as F16 \(fp16\)" "$QBERT" info "$d"
d=$(qmix qemb "$Q/dyn" "$Q/dyn" "c['quantization_config']['embeddings'] = 'int8-rowwise'")
expect_error "int8 embeddings config over FP32 embeddings" "qemb/config.json: quantization_config.embeddings is int8-rowwise, but model.safetensors stores 'bert.embeddings.word_embeddings.weight' as F32" "$QBERT" info "$d"
d=$(qmix qok "$Q/dyn" "$Q/dyn")
check "a quantized model whose config agrees loads" "$QBERT" info "$d" >/dev/null

# The model file must be a regular file.
d=$(model_copy stdir); rm "$d/model.safetensors"; mkdir "$d/model.safetensors"
expect_error "model.safetensors is a directory" "stdir/model.safetensors: is a directory, not a file" "$QBERT" info "$d"
d=$(model_copy stdev); rm "$d/model.safetensors"; ln -s /dev/zero "$d/model.safetensors"
expect_error "model.safetensors is a device" "stdev/model.safetensors: is a device, not a file" "$QBERT" info "$d"
d=$(model_copy stfifo); rm "$d/model.safetensors"; mkfifo "$d/model.safetensors"
expect_error "model.safetensors is a FIFO" "stfifo/model.safetensors: is a FIFO, not a file" "$QBERT" info "$d"
d=$(model_copy cfgfifo); rm "$d/config.json"; mkfifo "$d/config.json"
expect_error "config.json is a FIFO" "cfgfifo/config.json: is a FIFO, not a file" "$QBERT" info "$d"
d=$(model_copy tjfifo); mkfifo "$d/tokenizer.json"
expect_error "tokenizer.json is a FIFO" "tjfifo/tokenizer.json: is a FIFO, not a file" "$QBERT" info "$d"

# the vocabulary against the embedding table, and the other families
d=$(model_copy vocabbig); rm "$d/config.json"; sed 's/"vocab_size": 30522/"vocab_size": 40000/' "$M/config.json" >"$d/config.json"
expect_error "vocab_size larger than the embedding table" \
  "model.safetensors: tensor 'bert.embeddings.word_embeddings.weight' has shape \[30522, 256\], config.json implies \[40000, 256\]" \
  "$QBERT" info "$d"
d=$(model_copy vocabsmall); rm "$d/config.json"; sed 's/"vocab_size": 30522/"vocab_size": 30000/' "$M/config.json" >"$d/config.json"
expect_error "vocab_size smaller than the tokenizer" "vocabsmall: tokenizer has 30522 tokens but config.json vocab_size is 30000" \
  "$QBERT" info "$d"
d=$(model_copy mtype2); rm "$d/config.json"; sed 's/"model_type": "bert"/"model_type": "deberta-v2"/' "$M/config.json" >"$d/config.json"
expect_error "unknown model_type names the supported ones" \
  "mtype2/config.json: model_type \"deberta-v2\" is not supported \(bert, albert, distilbert, roberta, xlm-roberta, camembert, electra\)" \
  "$QBERT" info "$d"

# RoBERTa made of the bundled weights: "roberta." names, the two-layer
# head (the pooler as classifier.dense, the classifier as out_proj).
roberta_copy() { # roberta_copy NAME PYTHON_OVER_h [CONFIG_PYTHON_OVER_c]
  local d=$TMP/$1
  mkdir -p "$d"
  ln -sf "$M/vocab.txt" "$d/vocab.txt"
  retile "$M/model.safetensors" "$d/model.safetensors" "
for k in list(h):
    if k == '__metadata__': continue
    n = k.replace('bert.pooler.dense', 'classifier.dense').replace('bert.', 'roberta.')
    n = n.replace('classifier.weight', 'classifier.out_proj.weight').replace('classifier.bias', 'classifier.out_proj.bias')
    h[n] = h.pop(k); begin[n] = begin.pop(k)
$2"
  $PY -c "import json,sys; c=json.load(open(sys.argv[1])); c.update(model_type='roberta', architectures=['RobertaForSequenceClassification'], pad_token_id=1); ${3:-pass}; json.dump(c, open(sys.argv[2],'w'))" \
    "$M/config.json" "$d/config.json"
  echo "$d"
}
d=$(roberta_copy roberta "pass")
check "a RoBERTa checkpoint of the bundled weights loads" bash -c "'$QBERT' info '$d' >/dev/null"
d=$(roberta_copy robnohead "del h['classifier.out_proj.weight']")
expect_error "RoBERTa without its out_proj" "robnohead/model.safetensors: missing tensor 'classifier.out_proj.weight'" "$QBERT" info "$d"
d=$(roberta_copy robnodense "del h['classifier.dense.bias']")
expect_error "RoBERTa without its classifier.dense" "robnodense/model.safetensors: missing tensor 'classifier.dense.bias'" "$QBERT" info "$d"
d=$(roberta_copy robnopos "del h['roberta.embeddings.position_embeddings.weight']")
expect_error "RoBERTa without position embeddings" "robnopos/model.safetensors: missing tensor 'roberta.embeddings.position_embeddings.weight'" "$QBERT" info "$d"
d=$(roberta_copy robpos "pass" "c['max_position_embeddings']=2")
expect_error "RoBERTa positions that leave none for text" "robpos/config.json: max_position_embeddings 2 leaves no position after pad_token_id 1" "$QBERT" info "$d"
d=$(roberta_copy robmlm "del h['classifier.out_proj.weight'], h['classifier.out_proj.bias'], h['classifier.dense.weight'], h['classifier.dense.bias']" \
  "c['architectures']=['RobertaForMaskedLM']")
expect_error "RobertaForMaskedLM without lm_head" "robmlm/model.safetensors: missing tensor 'lm_head.dense.weight'" "$QBERT" info "$d"
expect_error "fill-mask on a classifier" "has no masked-LM head" "$QBERT" fill-mask "$M" "the film was [MASK]."
if [ -e "$SHARED/tokenizers/roberta-base/tokenizer.json" ]; then
  d=$(roberta_copy robtok "pass")
  ln -sf "$SHARED/tokenizers/roberta-base/tokenizer.json" "$d/tokenizer.json"
  expect_error "a tokenizer larger than the embedding table" "robtok: tokenizer has 50265 tokens but config.json vocab_size is 30522" \
    "$QBERT" info "$d"
fi

# inputs
printf 'caf\xc3 au lait\n' >"$TMP/bad-utf8.txt"
expect_error "invalid UTF-8 (predict)" "bad-utf8.txt input 1.*UTF-8" "$QBERT" predict "$M" --input "$TMP/bad-utf8.txt"
printf 'sentence\tlabel\ngood \xff film\t1\n' >"$TMP/bad-utf8.tsv"
expect_error "invalid UTF-8 (eval)" "bad-utf8.tsv:2.*UTF-8" "$QBERT" eval "$M" --data "$TMP/bad-utf8.tsv"
printf 'sentence\tlabel\n' >"$TMP/empty.tsv"
expect_error "empty dataset" "empty.tsv.*no examples" "$QBERT" eval "$M" --data "$TMP/empty.tsv"
printf 'sentence\tlabel\na fine film\t1\nbad\t7\n' >"$TMP/label.tsv"
expect_error "label outside id2label" "label.tsv:3: label '7'" "$QBERT" eval "$M" --data "$TMP/label.tsv"
printf '{"text": "ok"}\n{"text": \n' >"$TMP/bad.jsonl"
expect_error "malformed JSONL input" "bad.jsonl:2: invalid JSON" "$QBERT" predict "$M" --input "$TMP/bad.jsonl"
expect_error "missing dataset" "nope.tsv" "$QBERT" eval "$M" --data "$TMP/nope.tsv"
printf '[{"text": "a", "label": 1},\n {"text": "b", "label": 0}]\n' >"$TMP/array.jsonl"
expect_error "a JSON array for a dataset" "array.jsonl: a JSON array; datasets are JSON Lines" \
  "$QBERT" eval "$M" --data "$TMP/array.jsonl"
printf 'sentence\tlabel\na fine film \t1\n' >"$TMP/rows.tsv"
expect_error "a TSV read as CoNLL" "rows.tsv:2: a tab-separated text with spaces: a TSV row, not CoNLL" \
  "$QBERT" eval "$M" --data "$TMP/rows.tsv" --task conll
printf '{"sentence": "a", "label": 1}\n' >"$TMP/notext.jsonl"
expect_error "a JSONL line without text" "notext.jsonl:1: no \"text\" field" "$QBERT" eval "$M" --data "$TMP/notext.jsonl"
if [ -e "$SHARED/data/conll2003/valid.txt" ]; then
  expect_error "dataset that does not fit the model" "CoNLL.*sequence-classification" \
    "$QBERT" eval "$M" --data "$SHARED/data/conll2003/valid.txt" --limit 5
fi

# The Python binding over the same corpus: an exception, never a crash.
# (Not under the sanitizers: their library cannot load into python3.)
if [ -z "$SANITIZE" ] && $PY -c 'import numpy' 2>/dev/null; then
  QBERT_LIB=${QB_BUILD_DIR:-$SRC/build}/libqbert.so PYTHONPATH=$SRC/python \
    $PY "$SRC/tests/python/bad_input.py" "$M" "$TMP" >"$TMP/py.log" 2>&1
  rc=$?
  check "python binding raises on every case: $(tail -1 "$TMP/py.log")" test $rc -eq 0
  grep FAIL "$TMP/py.log" >&2; tail -1 "$TMP/py.log"
fi
finish
