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

d=$(model_copy missing)
with_header "$d" "del h['bert.pooler.dense.bias']"
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

d=$(model_copy mtype); rm "$d/config.json"; sed 's/"model_type": "bert"/"model_type": "gpt2"/' "$M/config.json" >"$d/config.json"
expect_error "unknown model_type" "config.json: model_type \"gpt2\" is not supported" "$QBERT" info "$d"

d=$(model_copy act); rm "$d/config.json"; sed 's/"hidden_act": "gelu"/"hidden_act": "swish"/' "$M/config.json" >"$d/config.json"
expect_error "unknown activation" "config.json: hidden_act \"swish\"" "$QBERT" info "$d"

d=$(model_copy novocab); rm "$d/vocab.txt"
expect_error "missing vocab" "no tokenizer.json, vocab.txt or spiece.model" "$QBERT" info "$d"

d=$(model_copy badvocab); rm "$d/vocab.txt"; printf 'hello\nworld\n' >"$d/vocab.txt"
expect_error "vocab without specials" "vocab.txt.*\[(CLS|SEP|UNK)\]" "$QBERT" info "$d"

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
d=$(model_copy tjpost)
printf '{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "ByteLevel"}, "post_processor": {"type": "Mystery"}}' >"$d/tokenizer.json"
expect_error "unsupported post-processor" "tokenizer.json: post_processor Mystery is not supported" "$QBERT" info "$d"

d=$(model_copy nomodel); rm "$d/model.safetensors"
expect_error "missing weights" "model.safetensors not found" "$QBERT" info "$d"

d=$(model_copy legacy); rm "$d/model.safetensors"; touch "$d/pytorch_model.bin"
expect_error "legacy pytorch_model.bin" "pytorch_model.bin.*convert" "$QBERT" info "$d"

expect_error "no such model dir" "does-not-exist/config.json" "$QBERT" info "$TMP/does-not-exist"

if [ -e "$SHARED/models/albert-mini-sst2/spiece.model" ]; then
  d=$TMP/albert; mkdir -p "$d"
  for f in config.json model.safetensors tokenizer_config.json; do ln -sf "$SHARED/models/albert-mini-sst2/$f" "$d/$f"; done
  head -c 5000 "$SHARED/models/albert-mini-sst2/spiece.model" >"$d/spiece.model"
  expect_error "corrupt spiece.model" "spiece.model" "$QBERT" info "$d"
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
if [ -e "$SHARED/data/conll2003/valid.txt" ]; then
  expect_error "dataset that does not fit the model" "CoNLL.*sequence-classification" \
    "$QBERT" eval "$M" --data "$SHARED/data/conll2003/valid.txt" --limit 5
fi
finish
