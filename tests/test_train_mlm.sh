#!/usr/bin/env bash
# qbert train --task mlm end to end on small slices of IMDB text: a fresh
# masked-LM head on bert-mini-sst2's encoder lowers the held-out loss; the
# output runs fill-mask, pre-trains again from its own head (whose first
# held-out loss is the one the first run saved: DEV's masks are fixed) and
# fine-tunes on SST-2; whole-word masking runs; bad input gets one line.
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/bert-mini-sst2
need_shared data/imdb/train-8000.tsv
need_shared data/imdb/test-2000.tsv
need_shared data/sst2/train.tsv
M=$SHARED/models/bert-mini-sst2
IMDB=$SHARED/data/imdb
N=160 NE=40
[ -n "$SANITIZE" ] && N=16 NE=8
# plain text, one review a line, as users bring it
texts() { awk -F'\t' -v n="$2" 'NR > 1 && NR <= n + 1 { gsub(/<br \/>/, " ", $4); print $4 }' "$1"; }
texts "$IMDB/train-8000.tsv" $N >"$TMP/train.txt"
texts "$IMDB/test-2000.tsv" $NE >"$TMP/dev.txt"
COMMON=(--task mlm --eval "$TMP/dev.txt" --epochs 1 --batch 16 --max-length 64 --threads 2 --lr 2e-4 --seed 3)
loss_of() { sed -n "s/^$2.*dev MLM loss \([0-9.]*\).*/\1/p" "$1" | head -n 1; }

check "train --help explains --task mlm" bash -c "'$QBERT' train --help | grep -q -- '--whole-word-mask'"

"$QBERT" train "$M" --data "$TMP/train.txt" "${COMMON[@]}" -o "$TMP/pre" >"$TMP/pre.txt" 2>"$TMP/pre.err"
check "mlm pre-training succeeds ($(tail -n 1 "$TMP/pre.err"))" test $? -eq 0
before=$(loss_of "$TMP/pre.txt" "before training")
after=$(loss_of "$TMP/pre.txt" "best epoch")
echo "held-out MLM loss: before $before, after $after"
check "held-out MLM loss printed" test -n "$before" -a -n "$after"
check "held-out MLM loss decreases ($before -> $after)" $PY -c "import sys; sys.exit(not float('$after') < float('$before'))"
check "a fresh masked-LM head" grep -q "new masked-LM head" "$TMP/pre.txt"
check "OUT_DIR is BertForMaskedLM" test "$(json_get "$TMP/pre/config.json" 'j["architectures"][0]')" = "BertForMaskedLM"
check "no classifier or pooler kept" bash -c "! '$QBERT' info '$TMP/pre' --json --tensors | grep -qE 'classifier|pooler'"
"$QBERT" fill-mask "$TMP/pre" "this movie was [MASK] ." --top-k 3 --json >"$TMP/fill.json" 2>"$TMP/fill.err"
check "fill-mask runs on the output" test $? -eq 0
check "fill-mask gives 3 candidates" test "$(json_get "$TMP/fill.json" 'len(j["masks"][0]["top"])')" = 3
"$QBERT" fill-mask "$TMP/pre" "a [MASK] c d e [MASK] f [MASK]" --max-length 5 --json >"$TMP/cut.json" 2>"$TMP/cut.err"
check "fill-mask: masks cut by --max-length are named ($(cat "$TMP/cut.err"))" \
  grep -q '2 of its masks lie past its first 5 tokens' "$TMP/cut.err"
check "fill-mask: the mask kept is filled" test "$(json_get "$TMP/cut.json" 'len(j["masks"])')" = 1

# again from the saved head: DEV's masks are fixed, so the first held-out
# loss is the one the first run reported for what it saved
"$QBERT" train "$TMP/pre" --data "$TMP/train.txt" --limit 16 "${COMMON[@]}" -o "$TMP/pre2" >"$TMP/pre2.txt" 2>&1
check "pre-training from a masked-LM checkpoint succeeds" test $? -eq 0
check "its head is kept" grep -q "kept masked-LM head" "$TMP/pre2.txt"
check "its first held-out loss is the saved one ($after)" test "$(loss_of "$TMP/pre2.txt" "before training")" = "$after"

"$QBERT" train "$M" --data "$TMP/train.txt" --limit 32 "${COMMON[@]}" --whole-word-mask --mlm-probability 0.2 \
  -o "$TMP/wwm" >"$TMP/wwm.txt" 2>&1
check "whole-word masking runs" test $? -eq 0

# fine-tuning from the pre-trained model: a fresh pooler and classifier
head -n 65 "$SHARED/data/sst2/train.tsv" >"$TMP/sst.tsv"
"$QBERT" train "$TMP/pre" --data "$TMP/sst.tsv" --eval "$SHARED/data/sst2/dev.tsv" --eval-limit 32 --epochs 1 \
  --max-length 64 --threads 2 -o "$TMP/ft" >"$TMP/ft.txt" 2>&1
check "fine-tuning the pre-trained model runs" test $? -eq 0
check "fine-tuning: a new 2-label head" grep -q "new head, 2 labels" "$TMP/ft.txt"

# bad input: one line naming the file or the problem, no OUT_DIR
: >"$TMP/empty.txt"
printf '  \n\n\t\n' >"$TMP/blank.txt"
expect_error "empty text file" "empty.txt: no text to train on" \
  "$QBERT" train "$M" --data "$TMP/empty.txt" "${COMMON[@]}" -o "$TMP/x1"
expect_error "blank DEV file" "blank.txt: no text to train on" \
  "$QBERT" train "$M" --data "$TMP/train.txt" "${COMMON[@]}" --eval "$TMP/blank.txt" -o "$TMP/x2"
mkdir "$TMP/nomask" && cp "$SRC/tests/data/tiny-bert-mlm/"* "$TMP/nomask/"
sed -i 's/^\[MASK\]$/[NOTMASK]/' "$TMP/nomask/vocab.txt"
expect_error "no mask token" "nomask: the tokenizer has no mask token" \
  "$QBERT" train "$TMP/nomask" --data "$TMP/train.txt" "${COMMON[@]}" -o "$TMP/x3"
expect_error "ALBERT has no masked-LM head" "no masked-LM head for model_type \"albert\"" \
  "$QBERT" train "$SRC/tests/data/tiny-albert-seq" --data "$TMP/train.txt" "${COMMON[@]}" --max-length 16 -o "$TMP/x4"
check "failures leave no OUT_DIR" bash -c "! ls -d '$TMP'/x[0-9]* 2>/dev/null"
"$QBERT" train "$M" --data "$TMP/sst.tsv" --eval "$TMP/sst.tsv" --whole-word-mask -o "$TMP/x5" >/dev/null 2>&1
check "--whole-word-mask without --task mlm: usage error" test $? -eq 2
"$QBERT" qat "$M" --data "$TMP/train.txt" "${COMMON[@]}" -o "$TMP/x6" >/dev/null 2>&1
check "qat --task mlm: usage error" test $? -eq 2
"$QBERT" train "$M" --data "$TMP/train.txt" "${COMMON[@]}" --mlm-probability 0 -o "$TMP/x7" >/dev/null 2>&1
check "--mlm-probability 0: usage error" test $? -eq 2

finish
