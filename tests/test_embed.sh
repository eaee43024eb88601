#!/usr/bin/env bash
# qbert embed end to end: a bare encoder in sentence-transformers layout
# made from the bundled model's weights (BertModel, cls pooling, Normalize),
# JSON lines and .npy output, the flags that override the layout, a
# quantized copy, and one-line errors for broken layouts.
set -u
. "$(dirname "$0")/lib.sh"
M=$SRC/models/bert-mini-sst2

# A bare encoder, pooling CLS + Normalize.
B=$TMP/bare
bare_encoder "$M" "$B" '{"word_embedding_dimension": 256, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}'
echo '{"max_seq_length": 16, "do_lower_case": false}' >"$B/sentence_bert_config.json"

check "embed --help" bash -c "'$QBERT' embed --help | grep -q 'usage: qbert embed'"
"$QBERT" info "$B" >"$TMP/info.txt"
check "info: a bare encoder" grep -q "BertModel (bert), no head" "$TMP/info.txt"
check "info: how it embeds" grep -qx "embedding    cls pooling, normalized, 16 tokens" "$TMP/info.txt"

# the layout's defaults: cls, normalized, 16 tokens
"$QBERT" embed "$B" "a gripping film" "" "$(printf 'word %.0s' $(seq 40))" >"$TMP/e.jsonl"
check "jsonl: a line per text" test "$(wc -l <"$TMP/e.jsonl")" -eq 3
cat >"$TMP/check.py" <<'EOF'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(len(rows), ",".join(str(len(r["embedding"])) for r in rows),
      ",".join("%.4f" % math.sqrt(sum(x * x for x in r["embedding"])) for r in rows),
      ",".join(str(len(r["input_ids"])) for r in rows), json.dumps(rows[1]["text"]), rows[0]["input_ids"][0])
EOF
check "jsonl: dim 256, unit norm, max_seq_length 16, input order" \
  test "$($PY "$TMP/check.py" "$TMP/e.jsonl")" = '3 256,256,256 1.0000,1.0000,1.0000 5,2,16 "" 101'

# flags override: two modes concatenated, no normalization, another length
"$QBERT" embed "$B" "a gripping film" "" --pooling mean+max --no-normalize --max-length 8 >"$TMP/o.jsonl"
check "--pooling mean+max --no-normalize" \
  bash -c "$PY '$TMP/check.py' '$TMP/o.jsonl' | grep -q '^2 512,512 ' && ! $PY '$TMP/check.py' '$TMP/o.jsonl' | grep -q '1.0000,1.0000'"
# --pooling cls on the classifier itself gives the bare encoder's vector before normalization
"$QBERT" embed "$M" "a gripping film" --pooling cls --normalize >"$TMP/c.jsonl"
check "a classifier embeds like its encoder" test "$(head -1 "$TMP/e.jsonl")" = "$(cat "$TMP/c.jsonl")"

# the length: --max-length, else max_seq_length, else the model's positions
# (at most 512); tokenizer.json's truncation block is not a default, as
# transformers, sentence-transformers and TEI each set theirs over it
T=$TMP/trunc
cp -r "$B" "$T"
$PY - "$M/vocab.txt" "$T/tokenizer.json" <<'PYEOF'
import json, sys
vocab = {w.rstrip("\n"): i for i, w in enumerate(open(sys.argv[1], encoding="utf-8"))}
json.dump({"version": "1.0", "truncation": {"max_length": 8, "strategy": "LongestFirst", "stride": 0},
           "padding": None, "added_tokens": [], "decoder": None,
           "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                          "strip_accents": None, "lowercase": True},
           "pre_tokenizer": {"type": "BertPreTokenizer"},
           "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", vocab["[SEP]"]], "cls": ["[CLS]", vocab["[CLS]"]]},
           "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                     "max_input_chars_per_word": 100, "vocab": vocab}}, open(sys.argv[2], "w"))
PYEOF
long="$(printf 'word %.0s' $(seq 40))"
ids() { "$QBERT" embed "$T" "$long" "$@" | $PY -c "import json, sys; print(len(json.loads(sys.stdin.readline())['input_ids']))"; }
check "max_seq_length 16 over tokenizer.json's truncation 8" test "$(ids)" = 16
check "--max-length 12 over both" test "$(ids --max-length 12)" = 12
rm "$T/sentence_bert_config.json"
check "not tokenizer.json's 8 where nothing else says" test "$(ids)" = 42

# --input and npy
printf 'first line\n\nthird line\r\n' >"$TMP/in.txt"
"$QBERT" embed "$B" --input "$TMP/in.txt" >"$TMP/in.jsonl"
check "--input: three texts in order" test "$($PY -c "import json,sys; print([json.loads(l)['text'] for l in open(sys.argv[1])])" "$TMP/in.jsonl")" = "['first line', '', 'third line']"
"$QBERT" embed "$B" --input - --format npy -o "$TMP/in.npy" <"$TMP/in.txt"
cat >"$TMP/npy.py" <<'EOF'
import ast, json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<H", b[8:10])[0]
h = ast.literal_eval(b[10:10 + n].decode())
data = struct.unpack("<%df" % (len(b) - 10 - n) // 4 if False else "<%df" % ((len(b) - 10 - n) // 4), b[10 + n:])
ref = [json.loads(l)["embedding"] for l in open(sys.argv[2])]
flat = [x for r in ref for x in r]
print(b[:6] == b"\x93NUMPY", (10 + n) % 64, h["descr"], h["shape"], max(abs(a - c) for a, c in zip(data, flat)) < 1e-7)
EOF
check "npy: header, shape, same values as jsonl" \
  test "$($PY "$TMP/npy.py" "$TMP/in.npy" "$TMP/in.jsonl")" = "True 0 <f4 (3, 256) True"
"$QBERT" embed "$B" "x" -o "$TMP/o2.jsonl"
check "-o writes jsonl" test "$(wc -l <"$TMP/o2.jsonl")" -eq 1
had_dash=$([ -e ./- ] && echo yes)
"$QBERT" embed "$B" --input "$TMP/in.txt" --format npy -o - >"$TMP/stdout.npy"
check "-o - writes the npy to stdout, no file named -" bash -c "cmp -s '$TMP/stdout.npy' '$TMP/in.npy' && [ -n '$had_dash' -o ! -e ./- ]"
[ -z "$had_dash" ] && rm -f ./-

# a quantized copy keeps the layout and stays close
"$QBERT" quantize "$B" -o "$TMP/q8" --method dynamic >/dev/null
check "quantize copies 1_Pooling" test -f "$TMP/q8/1_Pooling/config.json"
"$QBERT" embed "$TMP/q8" "a gripping film" "" >"$TMP/q.jsonl"
cos=$($PY -c "
import json,sys
a=[json.loads(l)['embedding'] for l in open(sys.argv[1])][:2]; b=[json.loads(l)['embedding'] for l in open(sys.argv[2])]
print(min(sum(x*y for x,y in zip(u,v)) for u,v in zip(a,b)) > 0.99)" "$TMP/e.jsonl" "$TMP/q.jsonl")
check "int8 dynamic embeddings within cosine 0.99" test "$cos" = True

# prompts (config_sentence_transformers.json): the default one, a named one
# and none each embed as the same text with that prefix written out, as
# sentence-transformers' encode(prompt_name=...) prepends it
P=$TMP/prompted
cp -r "$B" "$P"
echo '{"prompts": {"query": "query: ", "doc": ""}, "default_prompt_name": "query"}' \
  >"$P/config_sentence_transformers.json"
"$QBERT" embed "$B" "query: what is it" "what is it" >"$TMP/plain.jsonl"
"$QBERT" embed "$P" "what is it" >"$TMP/p-default.jsonl"
"$QBERT" embed "$P" "what is it" --prompt-name query >"$TMP/p-query.jsonl"
"$QBERT" embed "$P" "what is it" --prompt-name doc >"$TMP/p-doc.jsonl"
"$QBERT" embed "$P" "what is it" --no-prompt >"$TMP/p-none.jsonl"
field() { $PY -c "import json,sys; print(json.dumps(json.loads(open(sys.argv[1]).readlines()[int(sys.argv[2])])[sys.argv[3]]))" "$@"; }
for c in "p-default 0" "p-query 0" "p-doc 1" "p-none 1"; do
  set -- $c
  check "prompt: $1 embeds as the prefixed text" \
    test "$(field "$TMP/$1.jsonl" 0 embedding)" = "$(field "$TMP/plain.jsonl" "$2" embedding)" -a \
    "$(field "$TMP/$1.jsonl" 0 input_ids)" = "$(field "$TMP/plain.jsonl" "$2" input_ids)"
done
check "prompt: the output's text is the text given" test "$(field "$TMP/p-default.jsonl" 0 text)" = '"what is it"'
"$QBERT" info "$P" >"$TMP/pinfo.txt"
check "info: the prompts" grep -qx 'prompts      query "query: " (default), doc ""' "$TMP/pinfo.txt"
check "info --json: the prompts" test "$("$QBERT" info "$P" --json | $PY -c "import json,sys; e=json.load(sys.stdin)['embedding']; print(e['prompts'], e['default_prompt_name'], e['pooling'], e['normalize'], e['max_length'])")" = "{'query': 'query: ', 'doc': ''} query cls True 16"
check "prompts differ" test "$(field "$TMP/p-query.jsonl" 0 embedding)" != "$(field "$TMP/p-doc.jsonl" 0 embedding)"
"$QBERT" quantize "$P" -o "$TMP/pq" --method dynamic >/dev/null
"$QBERT" embed "$TMP/pq" "what is it" >"$TMP/pq.jsonl"
check "a quantized copy keeps the prompts" test "$(field "$TMP/pq.jsonl" 0 input_ids)" = "$(field "$TMP/plain.jsonl" 0 input_ids)"
expect_error "unknown prompt name" 'no prompt named "passage" in config_sentence_transformers.json \(it has: query, doc\)' \
  "$QBERT" embed "$P" "x" --prompt-name passage
expect_error "a prompt name on a model without prompts" 'no prompt named "query".*no "prompts"' \
  "$QBERT" embed "$B" "x" --prompt-name query
cp -r "$P" "$TMP/excl"
echo '{"pooling_mode_cls_token": true, "include_prompt": false}' >"$TMP/excl/1_Pooling/config.json"
expect_error "include_prompt false" 'prompt "query".*include_prompt false.*not support' "$QBERT" embed "$TMP/excl" "x"
"$QBERT" embed "$TMP/excl" "x" --no-prompt >/dev/null 2>&1
check "include_prompt false without a prompt embeds" test $? -eq 0
"$QBERT" embed "$P" "x" --prompt-name query --no-prompt >/dev/null 2>&1
check "--prompt-name with --no-prompt: usage error" test $? -eq 2

# usage errors exit 2
"$QBERT" embed "$B" "x" --format npy >/dev/null 2>&1; check "npy needs -o" test $? -eq 2
"$QBERT" embed "$B" "x" --pooling median >/dev/null 2>&1; check "unknown pooling" test $? -eq 2
for p in mean+ +mean mean++cls mean+mean; do
  "$QBERT" embed "$B" "x" --pooling "$p" >/dev/null 2>&1; check "pooling '$p' refused" test $? -eq 2
done
"$QBERT" embed "$B" >/dev/null 2>&1; check "no texts" test $? -eq 2

# one-line errors; a failed run leaves no output file
expect_error "predict on a bare encoder" "bare encoder.*no classification head" "$QBERT" predict "$B" "x"
printf 'sentence\tlabel\na fine film\t1\n' >"$TMP/one.tsv"
expect_error "eval on a bare encoder" "bare encoder.*no classification head" "$QBERT" eval "$B" --data "$TMP/one.tsv"
printf 'fine\ncaf\xc3 au lait\n' >"$TMP/bad-utf8.txt"
expect_error "invalid UTF-8" "bad-utf8.txt:2.*UTF-8" "$QBERT" embed "$B" --input "$TMP/bad-utf8.txt" -o "$TMP/bad.npy" --format npy
check "no partial npy" test ! -e "$TMP/bad.npy"
broken() { # broken NAME: a copy of the bare encoder to damage
  rm -rf "$TMP/$1"; cp -r "$B" "$TMP/$1"; echo "$TMP/$1"
}
d=$(broken missing); rm -r "$d/1_Pooling"
expect_error "modules.json: missing Pooling folder" "modules.json: Pooling module's folder \"1_Pooling\"" "$QBERT" embed "$d" "x"
d=$(broken dense); sed -i 's/models.Normalize/models.Dense/' "$d/modules.json"
expect_error "modules.json: unsupported module" "modules.json: module type .*Dense.* not supported" "$QBERT" embed "$d" "x"
d=$(broken subfolder); mkdir "$d/0_Transformer"; mv "$d"/*.* "$d/0_Transformer/"; mv "$d/0_Transformer/modules.json" "$d/"
sed -i 's/"path": ""/"path": "0_Transformer"/' "$d/modules.json"
expect_error "Transformer in a subfolder" "no config.json; its modules.json keeps the Transformer in \"0_Transformer\"" \
  "$QBERT" embed "$d" "x"
d=$(broken badjson); echo '[{"type": ' >"$d/modules.json"
expect_error "modules.json: malformed" "modules.json.*invalid JSON" "$QBERT" info "$d"
d=$(broken nomode); echo '{"pooling_mode_cls_token": false}' >"$d/1_Pooling/config.json"
expect_error "pooling config without a mode" "1_Pooling/config.json: no pooling mode" "$QBERT" embed "$d" "x"
d=$(broken modename); echo '{"pooling_mode": "cls"}' >"$d/1_Pooling/config.json"
check "pooling_mode \"cls\" (sentence-transformers' own spelling) pools as --pooling cls" \
  test "$("$QBERT" embed "$d" "a gripping film" 2>&1)" = "$("$QBERT" embed "$B" "a gripping film" --pooling cls)"
d=$(broken width); echo '{"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true}' >"$d/1_Pooling/config.json"
expect_error "pooling width differs" "word_embedding_dimension 384 is not the model's hidden size 256" "$QBERT" embed "$d" "x"
d=$(broken seqlen); echo '{"max_seq_length": "long"}' >"$d/sentence_bert_config.json"
expect_error "bad max_seq_length" "sentence_bert_config.json: max_seq_length" "$QBERT" embed "$d" "x"
d=$(broken prompts); echo '{"prompts": ["query: "]}' >"$d/config_sentence_transformers.json"
expect_error "prompts not an object" 'config_sentence_transformers.json: "prompts" must be an object' "$QBERT" embed "$d" "x"
d=$(broken prompt); echo '{"prompts": {"query": 3}}' >"$d/config_sentence_transformers.json"
expect_error "a prompt not a string" 'config_sentence_transformers.json: prompt "query" must be a string' \
  "$QBERT" info "$d"
d=$(broken default); echo '{"prompts": {"query": "q: "}, "default_prompt_name": "passage"}' \
  >"$d/config_sentence_transformers.json"
expect_error "default prompt not among the prompts" 'default_prompt_name "passage" is not one of its prompts' \
  "$QBERT" embed "$d" "x"
finish
