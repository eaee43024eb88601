#!/usr/bin/env bash
# The CLI end to end on the bundled model: every command, text and JSON
# output, streaming, and the documented JSON fields.
set -u
. "$(dirname "$0")/lib.sh"
M=$SRC/models/bert-mini-sst2

# help and usage
for c in info predict eval bench; do
  check "$c --help" bash -c "'$QBERT' $c --help | grep -q usage"
done
"$QBERT" frobnicate >/dev/null 2>&1; check "unknown command exits 2" test $? -eq 2
"$QBERT" predict >/dev/null 2>&1; check "predict without args exits 2" test $? -eq 2

# info
"$QBERT" info "$M" >"$TMP/info.txt"
check "info names the class" grep -q "BertForSequenceClassification" "$TMP/info.txt"
check "info counts parameters" grep -q "parameters   11171074" "$TMP/info.txt"
check "fp32 info claims no scales" bash -c "grep '^precision' '$TMP/info.txt' | grep -qv 'scales included'"
check "info lists labels" grep -q "0=negative 1=positive" "$TMP/info.txt"
"$QBERT" info "$M" --json --tensors >"$TMP/info.json"
check "info --json" test "$(json_get "$TMP/info.json" 'j["num_layers"], j["hidden_size"], len(j["tensors"])')" = "4 256 73"
# a session's memory: at least its activations (x, q, k, v, context, attention
# output and the FFN's intermediate), growing with the batch
"$QBERT" info "$M" --max-batch 8 --max-length 128 --threads 1 --json >"$TMP/info_mem.json"
"$QBERT" info "$M" --max-batch 1 --max-length 128 --threads 1 --json >"$TMP/info_mem1.json"
check "info --max-batch: session holds the activations" test "$(json_get "$TMP/info_mem.json" \
  'j["session_bytes"] >= 8 * 128 * (6 * j["hidden_size"] + j["intermediate_size"]) * 4')" = True
check "info --max-batch: more rows, more memory" test "$(json_get "$TMP/info_mem.json" 'j["session_bytes"]')" \
  -gt "$(json_get "$TMP/info_mem1.json" 'j["session_bytes"]')"
check "info --max-batch needs --max-length" bash -c "! '$QBERT' info '$M' --max-batch 2 2>/dev/null"

# predict: text and JSON; a clearly positive and a clearly negative review
"$QBERT" predict "$M" "a gripping, beautifully acted film" "the plot is thin and the jokes fall flat" >"$TMP/p.txt"
check "predict positive" bash -c "head -1 '$TMP/p.txt' | grep -q '^positive'"
check "predict negative" bash -c "sed -n 2p '$TMP/p.txt' | grep -q '^negative'"
"$QBERT" predict "$M" "Hello, world!" --json >"$TMP/p.json"
check "predict --json ids" test "$(json_get "$TMP/p.json" 'j["input_ids"]')" = "[101, 7592, 1010, 2088, 999, 102]"
check "predict --json fields" test "$(json_get "$TMP/p.json" 'sorted(k for k in j if k in ("text","input_ids","token_type_ids","logits","label"))')" = "['input_ids', 'label', 'logits', 'text', 'token_type_ids']"
"$QBERT" predict "$M" "Is it good?" --pair "yes it is" --json >"$TMP/pair.json"
check "predict --pair types" test "$(json_get "$TMP/pair.json" 'j["token_type_ids"]')" = "[0, 0, 0, 0, 0, 0, 1, 1, 1, 1]"

# streaming JSONL from stdin: order kept, \u0000 is data
printf '%s\n' '{"text": "great\u0000movie", "text_pair": null}' '{"text": "plain line here"}' '{"text": "Is it good?", "text_pair": "yes"}' \
  | "$QBERT" predict "$M" --input - --input-format jsonl --json --batch 2 >"$TMP/stream.jsonl"
check "stream: one line per input" test "$(wc -l <"$TMP/stream.jsonl")" -eq 3
check "stream: NUL kept in text" test "$($PY -c 'import json,sys; print(repr(json.loads(open(sys.argv[1]).readline())["text"]))' "$TMP/stream.jsonl")" = "'great\\x00movie'"
check "stream: order" test "$($PY -c 'import json,sys; print([json.loads(l)["text"] for l in open(sys.argv[1])][1])' "$TMP/stream.jsonl")" = "plain line here"
check "stream: pair" test "$($PY -c 'import json,sys; print([json.loads(l).get("text_pair") for l in open(sys.argv[1])][2])' "$TMP/stream.jsonl")" = "yes"

# over-long text: truncated to the position table, with a note
long=$($PY -c 'print("word " * 700)')
"$QBERT" predict "$M" "$long" --json >"$TMP/long.json" 2>"$TMP/long.err"
check "long text exit 0" test $? -eq 0
check "long text truncated to 512" test "$(json_get "$TMP/long.json" 'len(j["input_ids"])')" = "512"
check "long text note" grep -q "truncated to 512 tokens" "$TMP/long.err"

# bench, synthetic
"$QBERT" bench "$M" --seq 16 --batch 1,2 --runs 3 --warmup 1 --json >"$TMP/bench.jsonl"
check "bench: one object per config" test "$(wc -l <"$TMP/bench.jsonl")" -eq 2
check "bench fields" test "$($PY -c '
import json,sys
need={"seq","batch","threads","p50_ms","p90_ms","p99_ms","tokens_per_s","peak_rss_mb"}
print(all(need <= set(json.loads(l)) for l in open(sys.argv[1])))' "$TMP/bench.jsonl")" = "True"
# options the mode would not read, and empty list values, are usage errors
for args in "--batch 1,,2" "--batch 8," "--seq ,16" "--limit 5" "--max-length 16" "--task sentence"; do
  "$QBERT" bench "$M" $args >/dev/null 2>"$TMP/err"
  check "bench $args is a usage error" test $? -eq 2 -a -s "$TMP/err"
done

# Every --json output is strict JSON, one document a line: no NaN or
# Infinity (Python's json accepts them unless told not to).
strict_jsonl() {
  $PY -c '
import json,sys
def no(c): raise ValueError("non-standard constant " + c)
n = 0
for l in open(sys.argv[1]):
    json.loads(l, parse_constant=no); n += 1
sys.exit(0 if n else 1)' "$1"
}
"$QBERT" info "$M" --json --linears >"$TMP/info_lin.json"
for f in info.json info_lin.json p.json pair.json stream.jsonl long.json bench.jsonl; do
  check "$f is strict JSON" strict_jsonl "$TMP/$f"
done

if [ -e "$SHARED/data/sst2/dev.tsv" ]; then
  "$QBERT" eval "$M" --data "$SHARED/data/sst2/dev.tsv" --limit 64 --json >"$TMP/eval.json"
  check "eval fields" test "$(json_get "$TMP/eval.json" 'j["n"], "accuracy" in j, "macro_f1" in j')" = "64 True True"
  # a header naming the columns picks them, in any order, as predict's tables
  D=$SHARED/data/sst2/dev.tsv
  (printf 'id\tlabel\tsentence\n'; tail -n +2 "$D" | head -64 | awk -F'\t' '{print NR"\t"$2"\t"$1}') >"$TMP/named.tsv"
  "$QBERT" eval "$M" --data "$TMP/named.tsv" --json >"$TMP/named.json"
  check "eval reads a header's column names" \
    test "$(json_get "$TMP/named.json" 'j["n"], j["accuracy"]')" = "$(json_get "$TMP/eval.json" 'j["n"], j["accuracy"]')"
  expect_error "eval: one column for text and label" "columns must differ" \
    "$QBERT" eval "$M" --data "$D" --text-col 0 --label-col 0
  "$QBERT" eval "$M" --data "$D" --header maybe >/dev/null 2>&1
  check "eval --header maybe is a usage error" test $? -eq 2
  if [ -e "$SHARED/models/bert-mini-conll" ]; then # a lone soft hyphen has no token: not "beyond max_length"
    printf 'EU B-ORG\nrejects O\n\xc2\xad O\nGerman B-MISC\n\n' >"$TMP/shy.conll"
    "$QBERT" eval "$SHARED/models/bert-mini-conll" --data "$TMP/shy.conll" --task conll --json >"$TMP/shy.json"
    check "eval: a word without tokens counted as such" \
      test "$(json_get "$TMP/shy.json" 'j["words_scored"], j["words_unscored"], j["words_tokenless"]')" = "3 1 1"
  fi
  "$QBERT" bench "$M" --data "$SHARED/data/sst2/dev.tsv" --limit 64 --json >"$TMP/bd.json"
  check "bench --data" test "$(json_get "$TMP/bd.json" 'j["n"], j["sentences_per_s"] > 0')" = "64 True"
  check "eval is strict JSON" strict_jsonl "$TMP/eval.json"
  check "bench --data is strict JSON" strict_jsonl "$TMP/bd.json"
  expect_error "bench --task unknown" "^qbert bench: error: unknown task 'nope'" \
    "$QBERT" bench "$M" --data "$SHARED/data/sst2/dev.tsv" --task nope
  for o in "--seq 16" "--runs 3" "--warmup 1"; do
    "$QBERT" bench "$M" --data "$SHARED/data/sst2/dev.tsv" $o >/dev/null 2>"$TMP/err"
    check "bench --data $o is a usage error" test $? -eq 2 -a "$(grep -c 'synthetic mode' "$TMP/err")" -eq 1
  done
  expect_error "bench --data missing" "^qbert bench: error: $TMP/none.tsv: " "$QBERT" bench "$M" --data "$TMP/none.tsv"
elif [ "${CI:-}" = "true" ]; then
  fail "../shared/data/sst2/dev.tsv missing under CI"
else
  echo "skipped: ../shared not found (eval and bench --data parts)"
fi

# integers past int64, as Python writes them: transformers' model_max_length
# of a tokenizer without one (int(1e30)), a seed in an unknown key
mkdir "$TMP/bigint" && cp "$M"/* "$TMP/bigint/"
$PY - "$TMP/bigint" <<'PYEOF'
import json, sys
for name, key, v in (("tokenizer_config.json", "model_max_length", int(1e30)), ("config.json", "seed", 2**64 - 1)):
    p = sys.argv[1] + "/" + name
    c = json.load(open(p))
    c[key] = v
    json.dump(c, open(p, "w"))
PYEOF
check "integers past int64 in the JSON files: the model loads" \
  test "$("$QBERT" predict "$TMP/bigint" "a fine film")" = "$("$QBERT" predict "$M" "a fine film")"
finish
