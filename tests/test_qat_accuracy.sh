#!/usr/bin/env bash
# QAT keeps the accuracy (issue 5, bar 3): 100 QAT steps (3200 SST-2 train
# rows, batch 32, 8-bit, EMA scales) from bert-mini-sst2 and
# albert-mini-sst2, converted to int8 and scored on SST-2 dev with the
# integer kernels, lose at most 0.1 pt against the FP32 reference; static
# PTQ (minmax, 512 calibration rows) is printed beside it.
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/MODELS.md
need_shared data/sst2/train.tsv
need_shared data/sst2/dev.tsv
SST=$SHARED/data/sst2

# qat MODEL: QAT, then the same DEV score through `qbert eval`
qat() {
  local model=$SHARED/models/$1 n=3200 limit=() eval_limit=()
  [ -n "$SANITIZE" ] && n=64 && limit=(--limit 40) && eval_limit=(--eval-limit 40)
  "$QBERT" qat "$model" --data "$SST/train.tsv" --limit $n --eval "$SST/dev.tsv" "${eval_limit[@]}" --batch 32 \
    --max-length 66 --threads 2 -o "$TMP/$1-qat" >"$TMP/$1.out" 2>"$TMP/$1.err"
  if [ $? -ne 0 ]; then fail "$1: qat failed: $(cat "$TMP/$1.err")"; return; fi
  "$QBERT" eval "$TMP/$1-qat" --data "$SST/dev.tsv" --max-length 66 "${limit[@]}" --json >"$TMP/$1.json"
  if [ -n "$SANITIZE" ]; then ok; echo "  $1: QAT ran cleanly (sanitizer build: accuracy not compared)"; return; fi
  "$QBERT" quantize "$model" -o "$TMP/$1-ptq" --method static --observer minmax --calib "$SST/train.tsv" >/dev/null 2>&1
  "$QBERT" eval "$TMP/$1-ptq" --data "$SST/dev.tsv" --max-length 66 --json >"$TMP/$1-ptq.json"
  local got ptq ref
  got=$(json_get "$TMP/$1.json" "j['accuracy']")
  ptq=$(json_get "$TMP/$1-ptq.json" "j['accuracy']")
  ref=$(json_get "$model/training.json" "j['eval_accuracy']")
  printf '  %-18s FP32 %.4f  static PTQ %.4f  QAT (int8 kernels) %.4f\n' "$1" "$ref" "$ptq" "$got"
  check "$1: QAT within 0.1 pt of FP32" $PY -c "import sys; sys.exit($got < $ref - 0.001)"
}

qat bert-mini-sst2
qat albert-mini-sst2
finish
