#!/usr/bin/env bash
# Accuracy equal to the reference (MODELS.md, training.json): within 0.1 pt on
# the same examples with the max lengths the models were trained with.
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/MODELS.md
need_shared data/sst2/dev.tsv

# acc MODEL DATA MAXLEN FIELD REFERENCE_FIELD
acc() {
  local model=$SHARED/models/$1 limit=()
  [ -n "$SANITIZE" ] && limit=(--limit 40)
  "$QBERT" eval "$model" --data "$SHARED/data/$2" --max-length "$3" "${limit[@]}" --json >"$TMP/$1.json" 2>"$TMP/$1.err"
  if [ $? -ne 0 ]; then fail "$1: eval failed: $(cat "$TMP/$1.err")"; return; fi
  if [ -n "$SANITIZE" ]; then ok; echo "  $1: ran 40 examples cleanly (sanitizer build: accuracy not compared)"; return; fi
  local got ref
  got=$(json_get "$TMP/$1.json" "j['$4']")
  ref=$(json_get "$model/training.json" "j['$5']")
  printf '  %-18s %-28s %-10s qbert %.4f  reference %.4f\n' "$1" "$2" "$4" "$got" "$ref"
  check "$1 within 0.1 pt of the reference" $PY -c "import sys; sys.exit(abs($got - $ref) > 0.001)"
}

acc bert-mini-sst2 sst2/dev.tsv 66 accuracy eval_accuracy
acc albert-mini-sst2 sst2/dev.tsv 66 accuracy eval_accuracy
acc bert-mini-imdb imdb/test-2000.tsv 256 accuracy eval_accuracy
acc bert-mini-conll conll2003/valid.txt 128 entity_f1 eval_entity_f1
finish
