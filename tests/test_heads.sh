#!/usr/bin/env bash
# Heads as Hugging Face's pipelines read them: token models tag sentence
# pairs (the golden pair cases through predict: ids identical, logits within
# 1e-4), words as the pre-tokenizer splits them, entity spans grouped as
# aggregation_strategy="simple" (recomputed here from the printed logits),
# eval's entity F1 per type; sequence heads with one label (a sigmoid
# score) and problem_type multi_label_classification (a sigmoid per label).
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/bert-mini-conll
need_shared models/bert-mini-sst2
need_shared golden/cases-bert-mini-conll.jsonl
NER=$SHARED/models/bert-mini-conll
SST=$SHARED/models/bert-mini-sst2
GOLD=$SHARED/golden/cases-bert-mini-conll.jsonl

# the golden pair cases through predict --input FILE.jsonl
$PY -c "
import json, sys
for l in list(open(sys.argv[1]))[1:]:
    c = json.loads(l)
    if c['text_pair'] is not None: print(json.dumps({'text': c['text'], 'text_pair': c['text_pair']}))
" "$GOLD" >"$TMP/pairs.jsonl"
"$QBERT" predict "$NER" --input "$TMP/pairs.jsonl" --json --max-length 128 >"$TMP/pairs.out" 2>/dev/null
check "predict on the pair cases" test $? -eq 0
check "the 4 pair cases: ids identical, logits within 1e-4" $PY - "$GOLD" "$TMP/pairs.out" <<'PYEOF'
import json, sys
gold = [json.loads(l) for l in list(open(sys.argv[1]))[1:]]
gold = [c for c in gold if c["text_pair"] is not None]
got = [json.loads(l) for l in open(sys.argv[2])]
assert len(gold) == len(got) == 4, (len(gold), len(got))
for g, o in zip(gold, got):
    assert o["input_ids"] == g["input_ids"] and o["token_type_ids"] == g["token_type_ids"], g["text"][:40]
    d = max(abs(a - b) for ra, rb in zip(o["token_logits"], g["logits"]) for a, b in zip(ra, rb))
    assert d <= 1e-4, d
PYEOF

# words as BERT's pre-tokenizer splits them
"$QBERT" predict "$NER" --json "He moved to New York." --pair "It's big" >"$TMP/w.json"
check "York. is two words; the pair's words follow" \
  test "$(json_get "$TMP/w.json" '" ".join(j["words"])')" = "He moved to New York . It ' s big"
check "one tag per word" test "$(json_get "$TMP/w.json" 'len(j["tags"]) == len(j["words"])')" = True

# entity spans: HF's group_entities over the sub-tokens' softmax, from the printed logits
TEXTS=("John Smith moved to New York. He works for the United Nations in Geneva." "Angela Merkel met Emmanuel Macron in Paris")
"$QBERT" predict "$NER" --aggregate simple --json "${TEXTS[@]}" >"$TMP/e.json"
check "aggregate simple: entities as HF's simple strategy" $PY - "$TMP/e.json" "$NER/config.json" <<'PYEOF'
import json, math, sys
id2label = json.load(open(sys.argv[2]))["id2label"]
def tag(name):
    return (name[0], name[2:]) if name[:2] in ("B-", "I-") else ("I", name)
for line in open(sys.argv[1]):
    o = json.loads(line)
    ents, groups = [], []
    for row in o["token_logits"][1:-1]:  # [CLS] and [SEP] are special tokens
        m = max(row); e = [math.exp(x - m) for x in row]; k = row.index(m)
        name, score = id2label[str(k)], e[k] / sum(e)
        bi, t = tag(name)
        if groups and t == groups[-1][0] and bi != "B": groups[-1][1].append(score)
        else: groups.append((t, [score]))
    want = [(t, sum(s) / len(s)) for t, s in groups if t != "O"]
    got = [(x["entity"], x["score"]) for x in o["entities"]]
    assert [t for t, _ in want] == [t for t, _ in got], (want, got)
    assert all(abs(a - b) < 1e-5 for (_, a), (_, b) in zip(want, got)), (want, got)
    for x in o["entities"]:
        assert o["text"][x["start"]:x["end"]] == x["text"], x
PYEOF
check "aggregate: one line per input in text" test "$("$QBERT" predict "$NER" --aggregate simple "${TEXTS[@]}" | wc -l)" -eq 2
"$QBERT" predict "$SST" --aggregate simple "a film" >/dev/null 2>"$TMP/agg.err"
check "aggregate on a sequence model: a usage error" test $? -eq 2
check "aggregate on a sequence model: says why" grep -q "aggregate is for token-classification" "$TMP/agg.err"

# eval: entity F1 per type, its counts adding up to the totals
NE=200
[ -n "$SANITIZE" ] && NE=40
"$QBERT" eval "$NER" --data "$SHARED/data/conll2003/valid.txt" --limit $NE --json >"$TMP/ev.json"
check "eval: PER, ORG, LOC, MISC scored" \
  test "$(json_get "$TMP/ev.json" '" ".join(t["type"] for t in j["entity_types"])')" = "LOC MISC ORG PER"
check "eval: per-type F1 from its counts" test "$(json_get "$TMP/ev.json" 'all(abs(t["f1"] - (2 * t["correct"] / (t["gold"] + t["predicted"]))) < 1e-9 for t in j["entity_types"])')" = True
check "eval text: per-type lines" bash -c "'$QBERT' eval '$NER' --data '$SHARED/data/conll2003/valid.txt' --limit 50 | grep -qE '^  PER +[0-9.]+'"

# sequence heads read with a sigmoid: bert-mini-sst2 cut to one label, and relabelled multi-label
head_dir() { # head_dir DIR PYTHON-over-config-c [RETILE-PYTHON]
  mkdir "$1" && cp "$SST/vocab.txt" "$SST/tokenizer_config.json" "$1/"
  if [ -n "${3:-}" ]; then retile "$SST/model.safetensors" "$1/model.safetensors" "$3"
  else cp "$SST/model.safetensors" "$1/"; fi
  $PY -c "import json, sys; c = json.load(open(sys.argv[1])); $2; json.dump(c, open(sys.argv[2], 'w'))" \
    "$SST/config.json" "$1/config.json"
}
head_dir "$TMP/one" 'c["id2label"] = {"0": "score"}; c["label2id"] = {"score": 0}' \
  "h['classifier.weight']['shape'] = [1, 256]; h['classifier.weight']['data_offsets'][1] -= 1024
h['classifier.bias']['shape'] = [1]; h['classifier.bias']['data_offsets'][1] -= 4"
head_dir "$TMP/multi" 'c["problem_type"] = "multi_label_classification"'
for d in one multi; do
  "$QBERT" predict "$TMP/$d" --json "a gripping, moving film" "dull and far too long" >"$TMP/$d.json"
  check "$d: predict runs" test $? -eq 0
  check "$d: scores are the sigmoids of the logits" $PY - "$TMP/$d.json" <<'PYEOF'
import json, math, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    want = [1 / (1 + math.exp(-x)) for x in o["logits"]]
    assert o["function_to_apply"] == "sigmoid" and all(abs(a - b) < 1e-6 for a, b in zip(want, o["scores"])), o
    assert abs(o["probability"] - max(want)) < 1e-6 and isinstance(o["label"], str)
PYEOF
done
check "one label: text shows the sigmoid score" bash -c \
  "'$QBERT' predict '$TMP/one' 'a gripping film' | grep -qP '^score\t0\.[0-9]{4}\ta gripping film$'"
check "multi-label: text shows every label" bash -c \
  "'$QBERT' predict '$TMP/multi' 'a gripping film' | grep -qP '^(positive|negative):[01]\.[0-9]{4} (positive|negative):[01]\.[0-9]{4}\ta gripping film$'"
"$QBERT" predict "$SST" --json "a film" >"$TMP/soft.json"
check "softmax heads say so" test "$(json_get "$TMP/soft.json" 'j["function_to_apply"]')" = softmax

# problem_type regression: the raw outputs, as the text-classification pipeline
# gives them; no accuracy, no cross-entropy training on them
head_dir "$TMP/reg" 'c["problem_type"] = "regression"'
"$QBERT" predict "$TMP/reg" --json "a gripping film" >"$TMP/reg.json"
check "regression: scores are the logits" test "$(json_get "$TMP/reg.json" \
  'j["function_to_apply"], j["scores"] == j["logits"], j["probability"] == max(j["logits"])')" = "none True True"
printf 'sentence\tlabel\na film\tpositive\ndull\tnegative\n' >"$TMP/two.tsv"
for d in reg one; do
  "$QBERT" eval "$TMP/$d" --data "$TMP/two.tsv" >/dev/null 2>"$TMP/$d.err"
  rc=$?
  check "$d: eval refused, not an accuracy of one argmax ($(cat "$TMP/$d.err"))" \
    bash -c "[ $rc = 1 ] && grep -q 'not classes' '$TMP/$d.err'"
done
"$QBERT" train "$TMP/reg" --data "$TMP/two.tsv" --eval "$TMP/two.tsv" -o "$TMP/reg-trained" >/dev/null 2>"$TMP/tr.err"
rc=$?
check "regression: train refused without --new-head ($(cat "$TMP/tr.err"))" \
  bash -c "[ $rc = 1 ] && grep -q 'give --new-head' '$TMP/tr.err' && [ ! -e '$TMP/reg-trained' ]"
head_dir "$TMP/typo" 'c["problem_type"] = "multilabel"'
"$QBERT" predict "$TMP/typo" "a film" >/dev/null 2>"$TMP/typo.err"
rc=$?
check "an unknown problem_type refused, naming it ($(cat "$TMP/typo.err"))" \
  bash -c "[ $rc = 1 ] && grep -q \"config.json: .problem_type. 'multilabel' is not\" '$TMP/typo.err'"

finish
