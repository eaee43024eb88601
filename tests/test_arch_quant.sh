#!/usr/bin/env bash
# Every quantization method on the RoBERTa and ELECTRA families and the
# masked-LM head: random checkpoints of ../shared/tools (a RobertaForMaskedLM
# and an ElectraForSequenceClassification, with its embedding projection)
# quantized dynamic, static, fp16, bf16 and int4 weight-only, then compared
# with FP32 on SST-2 dev sentences: ELECTRA's labels and logits, RoBERTa's
# sentence embeddings (cosine) and its masked-LM logits over the whole
# vocabulary (correlation); a bare RobertaModel embeds.
set -u
. "$(dirname "$0")/lib.sh"
need_shared tools/make_random_checkpoint.py
need_shared data/sst2/dev.tsv
$PY -c "import numpy" 2>/dev/null || { echo "skipped: /usr/bin/python3 has no numpy"; exit 77; }

n=32
[ -n "$SANITIZE" ] && n=6
cut -f1 "$SHARED/data/sst2/dev.tsv" | sed -n "2,$((n + 1))p" >"$TMP/texts.txt"
ROB=$TMP/roberta-mlm ELE=$TMP/electra
$PY "$SHARED/tools/make_random_checkpoint.py" roberta-small-odd "$ROB" --seed 0 --head mlm >/dev/null
$PY "$SHARED/tools/make_random_checkpoint.py" electra-small "$ELE" --seed 0 >/dev/null

# The bare encoder: the masked-LM model without its head.
BASE=$TMP/roberta-base-model
mkdir -p "$BASE"
cp "$ROB/tokenizer.json" "$ROB/tokenizer_config.json" "$BASE/"
retile "$ROB/model.safetensors" "$BASE/model.safetensors" \
  "[h.pop(k) for k in [k for k in h if k.startswith('lm_head.')]]"
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['architectures']=['RobertaModel']; json.dump(c, open(sys.argv[2],'w'))" \
  "$ROB/config.json" "$BASE/config.json"
check "info: a bare RobertaModel" bash -c "'$QBERT' info '$BASE' | grep -q 'RobertaModel (roberta), no head'"
check "info: no labels without a classification head" bash -c "'$QBERT' info '$BASE' | grep -q '^labels  *none'"
check "info --json: no labels on a masked-LM head" test "$("$QBERT" info "$ROB" --json | json_get /dev/stdin 'len(j["labels"])')" = 0
"$QBERT" embed "$BASE" --input "$TMP/texts.txt" >"$TMP/base.jsonl"
"$QBERT" embed "$ROB" --input "$TMP/texts.txt" >"$TMP/rob.jsonl"
check "a bare RobertaModel embeds as its masked-LM parent" cmp -s "$TMP/base.jsonl" "$TMP/rob.jsonl"

# a RoBERTa token model's words: cut where its pre-tokenizer cuts, ids as the sentence's
RTOK=$TMP/roberta-token
$PY "$SHARED/tools/make_random_checkpoint.py" roberta-small-odd "$RTOK" --seed 0 --head token >/dev/null
T="New York. It's hyphen-ated"
"$QBERT" predict "$RTOK" "$T" --json >"$TMP/rtok.json"
check "RoBERTa token model: words cut as GPT-2's pattern cuts" test "$(json_get "$TMP/rtok.json" '" ".join(j["words"])')" = \
  "New York . It 's hyphen - ated"
check "RoBERTa token model: the words' ids are the sentence's" test "$(json_get "$TMP/rtok.json" 'j["input_ids"]')" = \
  "$("$QBERT" embed "$RTOK" "$T" | json_get /dev/stdin 'j["input_ids"]')"

UNTIED=$TMP/roberta-untied
mkdir "$UNTIED" && ln -s "$ROB"/* "$UNTIED/" && rm "$UNTIED/config.json"
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['tie_word_embeddings']=False; json.dump(c, open(sys.argv[2],'w'))" \
  "$ROB/config.json" "$UNTIED/config.json"
expect_error "an untied masked-LM head without its decoder" "tie_word_embeddings is false but there is no 'lm_head.decoder.weight'" \
  "$QBERT" fill-mask "$UNTIED" "The movie was <mask>."

MASKED="The movie was <mask>."
expect_error "fill-mask: a text without the model's mask token" "text 1: no <mask> \\(the model's mask token\\)" \
  "$QBERT" fill-mask "$ROB" "The movie was [MASK]."
"$QBERT" fill-mask "$ROB" "$MASKED" "<mask> and <mask>" --top-k 3 >"$TMP/fill.txt"
check "fill-mask text: a block per mask, k lines each" test "$(grep -c '^    ' "$TMP/fill.txt")" -eq 9
# sentence-transformers strips each text (and lowercases it when its
# sentence_bert_config.json says do_lower_case): a byte-level BPE shows it
ids() { "$QBERT" embed "$1" "$2" | $PY -c 'import json,sys; print(json.loads(sys.stdin.readline())["input_ids"])'; }
check "without the layout, spaces around a text are tokens" test "$(ids "$ROB" " Hello world ")" != "$(ids "$ROB" "Hello world")"
ST=$TMP/roberta-st
cp -r "$ROB" "$ST" && mkdir -p "$ST/1_Pooling"
echo '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
 {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]' >"$ST/modules.json"
echo '{"pooling_mode_mean_tokens": true}' >"$ST/1_Pooling/config.json"
check "sentence-transformers layout: each text stripped" test "$(ids "$ST" " Hello world ")" = "$(ids "$ST" "Hello world")"
echo '{"max_seq_length": 64, "do_lower_case": true}' >"$ST/sentence_bert_config.json"
check "do_lower_case: each text lowercased" test "$(ids "$ST" " Hello WORLD")" = "$(ids "$ROB" "hello world")"
"$QBERT" fill-mask "$ROB" "$(printf 'a \033[31m <mask>')" --top-k 1 >"$TMP/fill_esc.txt"
check "fill-mask text escapes control characters" bash -c "! grep -q \$'\\033' '$TMP/fill_esc.txt'"
"$QBERT" predict "$ELE" --input "$TMP/texts.txt" --json >"$TMP/ele.jsonl"
"$QBERT" fill-mask "$ROB" "$MASKED" --json --top-k 50265 >"$TMP/fill.jsonl"
check "fill-mask: token_str is the token decoded (Ġ a space), as the pipeline's" $PY - "$TMP/fill.jsonl" <<'PYEOF'
import json, sys
top = json.loads(open(sys.argv[1]).readline())["masks"][0]["top"]
plain = [t for t in top if all(c.isascii() and c.isalnum() for c in t["token"].lstrip("Ġ"))]
assert sum(t["token"].startswith("Ġ") for t in plain) > 100, "too few Ġ tokens to test"
bad = [t for t in plain if t["token_str"] != t["token"].replace("Ġ", " ")]
assert not bad, bad[:3]
PYEOF

cat >"$TMP/compare.py" <<'EOF'
import json, math, sys
def rows(p): return [json.loads(l) for l in open(p)]
def cos(u, v): return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))
def corr(u, v):
    mu, mv = sum(u) / len(u), sum(v) / len(v)
    return cos([a - mu for a in u], [b - mv for b in v])
d = sys.argv[1]
a, b = rows(d + "/ele.jsonl"), rows(d + "/q-ele.jsonl")
agree = sum(x["label"] == y["label"] for x, y in zip(a, b)) / len(a)
dlogit = max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x["logits"], y["logits"]))
cs = [cos(x["embedding"], y["embedding"]) for x, y in zip(rows(d + "/rob.jsonl"), rows(d + "/q-rob.jsonl"))]
def vocab_logits(p):
    top = rows(p)[0]["masks"][0]["top"]
    v = [0.0] * len(top)
    for t in top: v[t["token_id"]] = t["logit"]
    return v
r = corr(vocab_logits(d + "/fill.jsonl"), vocab_logits(d + "/q-fill.jsonl"))
print("%.3f %.5f %.6f %.6f %.6f" % (agree, dlogit, sum(cs) / len(cs), min(cs), r))
EOF

# method, its options, then the bounds: label agreement, max |logit - FP32|,
# minimum embedding cosine, masked-LM logit correlation.  Random weights
# give logits about 0.1 apart, so a flip needs a large error.
while IFS='|' read -r name opts agree dlogit cosmin corr; do
  q="$TMP/q-$name"
  for m in ele rob; do
    src=$ELE; [ $m = rob ] && src=$ROB
    # shellcheck disable=SC2086
    "$QBERT" quantize "$src" -o "$q-$m" $opts >"$TMP/quantize.log" 2>&1 ||
      fail "quantize $m $name: $(tail -1 "$TMP/quantize.log")"
  done
  "$QBERT" predict "$q-ele" --input "$TMP/texts.txt" --json >"$TMP/q-ele.jsonl"
  "$QBERT" embed "$q-rob" --input "$TMP/texts.txt" >"$TMP/q-rob.jsonl"
  "$QBERT" fill-mask "$q-rob" "$MASKED" --json --top-k 50265 >"$TMP/q-fill.jsonl"
  read -r g_agree g_dlogit g_cosmean g_cosmin g_corr < <($PY "$TMP/compare.py" "$TMP")
  echo "  $name: electra labels agree $g_agree, max |logit - fp32| $g_dlogit; roberta embedding cosine" \
       "mean $g_cosmean min $g_cosmin; masked-LM logit correlation $g_corr"
  check "$name: electra labels agree >= $agree" $PY -c "assert $g_agree >= $agree"
  check "$name: electra logits within $dlogit" $PY -c "assert $g_dlogit <= $dlogit"
  check "$name: roberta embedding cosine >= $cosmin" $PY -c "assert $g_cosmin >= $cosmin"
  check "$name: masked-LM logits correlate >= $corr" $PY -c "assert $g_corr >= $corr"
done <<EOF
dynamic|--method dynamic|0.9|0.01|0.999|0.99
static|--method static --calib $SHARED/data/sst2/dev.tsv --calib-n 16|0.9|0.01|0.999|0.99
fp16|--method fp16|1|0.001|0.9999|0.999
bf16|--method bf16|0.9|0.005|0.9999|0.999
int4|--method weight-only --bits 4 --quantize-embeddings|0.9|0.05|0.99|0.95
EOF

finish
