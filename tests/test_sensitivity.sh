#!/usr/bin/env bash
# qbert sensitivity: per-layer tables for a token model (CoNLL) and for
# ALBERT's shared layers; the suggested map meets its budget on the split it
# was tuned on (checked independently by quantizing with it and evaluating),
# and is reported on a second split.
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/bert-mini-conll
N=60
[ -n "$SANITIZE" ] && N=8

# sens MODEL DATA HOLDOUT MAXLEN METRIC BUDGET LINEARS [OPTIONS...]
sens() {
  local model=$SHARED/models/$1 out=$TMP/$1${8:-}
  "$QBERT" sensitivity "$model" --data "$SHARED/data/$2" --holdout "$SHARED/data/$3" --limit $N --max-length "$4" \
    --suggest "$6" -o "$out" ${8:+--bits "$8"} >"$out.out" 2>"$out.err"
  check "$1: sensitivity runs" test $? -eq 0
  for f in sensitivity.md sensitivity.json sensitivity.csv sensitivity.svg precision_map.json; do
    check "$1: writes $f" test -s "$out/$f"
  done
  local layers; layers=$(json_get "$out/sensitivity.json" 'len(j["rows"])')
  check "$1: one row per linear ($layers)" test "$layers" -eq "$7"
  check "$1: holdout reported" grep -q "on the holdout" "$out.out"
  check "$1: no scratch models left" test -z "$(ls -A "$out" | grep '^\.')"
  check "$1: whole model measured beside the single layers" \
    $PY -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(j['whole_accuracy'] is None)" "$out/sensitivity.json"
  # the budget, checked with the ordinary commands
  "$QBERT" quantize "$model" -o "$out/mixed" --method dynamic --precision-map "$out/precision_map.json" >/dev/null
  "$QBERT" eval "$model" --data "$SHARED/data/$2" --limit $N --max-length "$4" --json >"$out/fp32.json"
  "$QBERT" eval "$out/mixed" --data "$SHARED/data/$2" --limit $N --max-length "$4" --json >"$out/mixed.json"
  local a b
  a=$(json_get "$out/fp32.json" "j['$5']"); b=$(json_get "$out/mixed.json" "j['$5']")
  echo "  $1: fp32 $a, suggested map $b, budget $6 pt"
  check "$1: suggested map meets its budget" $PY -c "import sys; sys.exit(not 100 * ($a - $b) <= $6 + 1e-9)"
}
sens bert-mini-conll conll2003/valid.txt conll2003/test.txt 128 entity_f1 0.2 25
sens albert-mini-sst2 sst2/dev.tsv sst2/train.tsv 66 accuracy 0.0 9
# low bits: every layer named, from 2 bits up the ladder 4, 8, fp16
sens bert-mini-conll conll2003/valid.txt conll2003/test.txt 128 entity_f1 0.5 25 2
check "--bits 2: the map names every layer but the classifier, on the ladder" test "$(json_get "$TMP/bert-mini-conll2/precision_map.json" \
  'len(j) == 24 and set(j.values()) <= {"int2", "int4", "int8", "fp16"}')" = True
# an existing report is refused untouched; --force replaces it, keeping other files
A=$TMP/albert-mini-sst2
touch "$A/notes.txt"
"$QBERT" sensitivity "$SHARED/models/albert-mini-sst2" --data "$SHARED/data/sst2/dev.tsv" --limit 4 -o "$A" 2>"$TMP/err"
rc=$?
check "existing REPORT_DIR refused ($(head -c 100 "$TMP/err"))" \
  bash -c "test $rc -eq 2 && grep -q 'already exists: use --force' '$TMP/err' && test -s '$A/precision_map.json'"
"$QBERT" sensitivity "$SHARED/models/albert-mini-sst2" --data "$SHARED/data/sst2/dev.tsv" --limit 4 -o "$A" \
  --force >/dev/null 2>"$TMP/err"
check "--force: runs" test $? -eq 0
check "--force: the earlier suggested map is gone, other files kept" \
  test ! -e "$A/precision_map.json" -a -e "$A/notes.txt" -a -s "$A/sensitivity.json"
# what a SIGKILL leaves (the scratch alone) does not block the next run
K=$TMP/killed; mkdir -p "$K/.one-layer-model" && echo '{}' >"$K/.one-layer-map.json"
"$QBERT" sensitivity "$SHARED/models/albert-mini-sst2" --data "$SHARED/data/sst2/dev.tsv" --limit 4 -o "$K" \
  >/dev/null 2>"$TMP/err"
check "a killed run's scratch alone does not block the next" test $? -eq 0 -a -s "$K/sensitivity.json" -a ! -e "$K/.one-layer-map.json"
check "without --suggest, no 'nan' in sensitivity.md" bash -c "! grep -q nan '$K/sensitivity.md'"
mkfifo "$TMP/fifo"
"$QBERT" sensitivity "$SHARED/models/albert-mini-sst2" --data "$TMP/fifo" -o "$TMP/ff" 2>"$TMP/err"
check "a FIFO as data: named as one, not 'no such file'" grep -q "fifo: is a FIFO, not a file" "$TMP/err"
# SIGINT mid-run: no REPORT_DIR the run made is left, and in one it was
# given (--force) no scratch model; the process dies of the signal
interrupt() { # interrupt DIR [--force]
  set -m
  "$QBERT" sensitivity "$SHARED/models/bert-mini-sst2" --data "$SHARED/data/sst2/dev.tsv" --limit 200 -o "$1" "${@:2}" \
    >/dev/null 2>"$TMP/int.err" &
  local pid=$!
  set +m
  for _ in $(seq 600); do ls -A "$1" 2>/dev/null | grep -q one-layer || ! kill -0 $pid 2>/dev/null && break; sleep 0.02; done
  kill -INT $pid 2>/dev/null
  wait $pid
}
interrupt "$TMP/int1"
check "SIGINT: exit 130 ($?)" test $? -eq 130
check "SIGINT: no REPORT_DIR it made is left" bash -c "! ls -d '$TMP'/int1* 2>/dev/null"
mkdir "$TMP/int2" && touch "$TMP/int2/notes.txt"
interrupt "$TMP/int2" --force
check "SIGINT with --force: the given REPORT_DIR keeps its files, and no scratch" \
  test "$(ls -A "$TMP/int2" | tr '\n' ' ')" = "notes.txt "
# a failed run leaves no REPORT_DIR it made; options that would do nothing are refused
: >"$TMP/empty.tsv"
"$QBERT" sensitivity "$SHARED/models/bert-mini-conll" --data "$TMP/empty.tsv" -o "$TMP/failed" 2>"$TMP/err"
rc=$?
check "empty data refused ($(head -c 100 "$TMP/err"))" test $rc -eq 1 -a ! -e "$TMP/failed"
"$QBERT" sensitivity "$SHARED/models/bert-mini-conll" --data "$SHARED/data/conll2003/valid.txt" \
  --holdout "$TMP/missing.txt" -o "$TMP/failed" 2>"$TMP/err"
check "--holdout without --suggest refused" test $? -eq 2 -a ! -e "$TMP/failed"
"$QBERT" sensitivity "$SHARED/models/bert-mini-conll" --data "$SHARED/data/conll2003/valid.txt" \
  --calib "$SHARED/data/conll2003/valid.txt" -o "$TMP/failed" 2>"$TMP/err"
check "--calib without --method static refused" test $? -eq 2 -a ! -e "$TMP/failed"
finish
