#!/usr/bin/env bash
# predict --input on files as users have them: JSONL fields carried to the
# output, TSV/CSV read by column name, --fields, bad lines under stop/skip.
set -u
. "$(dirname "$0")/lib.sh"
M=$SRC/models/bert-mini-sst2
P() { "$QBERT" predict "$M" "$@"; }
# jfield FILE LINE EXPR: a Python expression over output line LINE's object `j`.
jfield() { sed -n "$2p" "$1" | $PY -c "import json,sys; j=json.loads(sys.stdin.read()); print($3)"; }

printf '{"id": 7, "text": "a gripping film", "meta": {"src": [1, 2.5]}}\n{"text": "dull", "id": "b"}\n' >"$TMP/in.jsonl"
P --input "$TMP/in.jsonl" --json >"$TMP/out" 2>"$TMP/err"
check "jsonl: id carried" test "$(jfield "$TMP/out" 1 'j["id"], j["meta"]')" = "7 {'src': [1, 2.5]}"
check "jsonl: input fields come first" test "$(jfield "$TMP/out" 2 'list(j)[:2]')" = "['id', 'text']"
check "jsonl: the text is not repeated as a field" test "$(jfield "$TMP/out" 1 'sorted(j)')" = \
  "['function_to_apply', 'id', 'input_ids', 'label', 'logits', 'meta', 'probability', 'scores', 'text', 'token_type_ids', 'truncated_tokens']"
want=$(P "a gripping film" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["logits"])')
check "jsonl: the same logits as the text given as an argument" test "$(jfield "$TMP/out" 1 'j["logits"]')" = "$want"

P --input "$TMP/in.jsonl" --json --fields label,probability >"$TMP/out"
check "--fields: only those, input fields kept" test "$(jfield "$TMP/out" 1 'list(j)')" = "['id', 'meta', 'label', 'probability']"
P --input "$TMP/in.jsonl" --json --fields scores,function_to_apply >"$TMP/out"
check "--fields: scores and function_to_apply can be chosen" test "$(jfield "$TMP/out" 1 'list(j)[2:], len(j["scores"])')" = \
  "['scores', 'function_to_apply'] 2"
P --input "$TMP/in.jsonl" --json --fields label,score >/dev/null 2>"$TMP/err"
check "--fields: an unknown field is a usage error naming it" test $? -eq 2 -a -n "$(grep "unknown field 'score'" "$TMP/err")"
check "--fields without --json is a usage error" test "$(P --input "$TMP/in.jsonl" --fields label 2>/dev/null; echo $?)" = 2

# TSV as GLUE writes it: a header, the label column beside the sentence.
printf 'sentence\tlabel\na gripping film\t1\nthe plot is thin\t0\n' >"$TMP/dev.tsv"
P --input "$TMP/dev.tsv" >"$TMP/out"
check "tsv: the header is not classified" test "$(wc -l <"$TMP/out")" -eq 2
check "tsv: the label column is not part of the text" test "$(cut -f3 "$TMP/out" | head -1)" = "a gripping film"
P --input "$TMP/dev.tsv" --json >"$TMP/out"
check "tsv: other columns carried (as strings; a gold label kept as input_label beside the prediction)" \
  test "$(jfield "$TMP/out" 2 'j["text"], j["label"], list(j)[0], j["input_label"]')" = "the plot is thin negative input_label 0"
printf 'idx\treview\tscore\n3\ta gripping film\t5\n' >"$TMP/named.tsv"
P --input "$TMP/named.tsv" --text-column review --json >"$TMP/out"
check "tsv: --text-column" test "$(jfield "$TMP/out" 1 'j["idx"], j["score"], j["text"]')" = "3 5 a gripping film"
expect_error "tsv: no text column" "named.tsv:1: the header has no column sentence, text or sentence1 \(it has 'idx', 'review', 'score'" \
  "$QBERT" predict "$M" --input "$TMP/named.tsv"

# CSV with RFC 4180 quoting: commas, doubled quotes and a line break inside.
printf 'id,sentence1,sentence2\n1,"a film, ""gripping""\nand long",yes\n2,b,c\n' >"$TMP/pairs.csv"
P --input "$TMP/pairs.csv" --json >"$TMP/out"
check "csv: quoted fields" test "$(jfield "$TMP/out" 1 'repr(j["text"]), j["text_pair"], j["id"]')" = \
  "'a film, \"gripping\"\\nand long' yes 1"
check "csv: a record over two lines is one input" test "$(wc -l <"$TMP/out")" -eq 2
want=$(P 'b' --pair 'c' --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["input_ids"])')
check "csv: sentence1/sentence2 are the pair" test "$(jfield "$TMP/out" 2 'j["input_ids"]')" = "$want"

# Bad lines: stop writes what came before and names the line; skip goes on.
printf '{"id": 1, "text": "fine"}\n{"text": \n{"id": 3, "text": "also fine"}\n{"id": 4}\n' >"$TMP/bad.jsonl"
P --input "$TMP/bad.jsonl" --json >"$TMP/out" 2>"$TMP/err"
check "stop: exit 1" test $? -eq 1
check "stop: the line before is written" test "$(wc -l <"$TMP/out")" -eq 1 -a "$(jfield "$TMP/out" 1 'j["id"]')" = 1
check "stop: the error names the line" grep -q "bad.jsonl:2: invalid JSON" "$TMP/err"
P --input "$TMP/bad.jsonl" --json --on-error skip >"$TMP/out" 2>"$TMP/err"
check "skip: exit 0, one output line per input line" test $? -eq 0 -a "$(wc -l <"$TMP/out")" -eq 4
check "skip: each bad line on stderr with its number" test "$(grep -c 'bad.jsonl:[24]' "$TMP/err")" -eq 2
check "skip: the error object in place" test "$(jfield "$TMP/out" 4 'j["line"], "text" in j["error"]')" = "4 True"
check "skip: results after a bad line keep their ids" test "$(jfield "$TMP/out" 3 'j["id"]')" = 3
printf 'sentence\tlabel\ngood\t1\nno label here\ncaf\xc3 au lait\t0\nfine\t1\n' >"$TMP/bad.tsv"
P --input "$TMP/bad.tsv" --on-error skip >"$TMP/out" 2>"$TMP/err"
check "tsv skip: short row and bad UTF-8 reported with their line numbers" \
  test "$(grep -cE 'bad.tsv:3: 1 fields, the header has 2|bad.tsv input 4: .*UTF-8' "$TMP/err")" -eq 2
check "tsv skip: the good rows scored" test "$(cut -f3 "$TMP/out" | tr '\n' ' ')" = "good fine "
finish
