#!/usr/bin/env bash
# qbert qat end to end on small slices: the int8 model it writes (config,
# info, the DEV score reproduced by `qbert eval` on the integer kernels),
# the packed low-bit models of --bits 4, 2 and ternary (with LSQ scales and
# distillation), bad teachers and temperatures, `--resume` after kill -9 at random moments
# giving the same bytes as an uninterrupted run, resuming into another
# model's directory refused, and a diverging run that keeps its last good
# checkpoint (and refuses to resume once that checkpoint is gone).
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/bert-mini-sst2
need_shared data/sst2/train.tsv
M=$SHARED/models/bert-mini-sst2
SST=$SHARED/data/sst2
N=160 EVAL=100
[ -n "$SANITIZE" ] && N=64 EVAL=20
head -n $((N + 1)) "$SST/train.tsv" >"$TMP/train.tsv"
COMMON=(--data "$TMP/train.tsv" --eval "$SST/dev.tsv" --eval-limit $EVAL --batch 16 --max-length 64 --threads 2)

check "qat --help" bash -c "'$QBERT' qat --help | grep -q 'usage: qbert qat'"
"$QBERT" qat "$M" --data "$TMP/train.tsv" --eval "$SST/dev.tsv" -o "$TMP/x" --bits 9 >/dev/null 2>&1
check "--bits 9 is a usage error" test $? -eq 2
"$QBERT" qat "$M" "${COMMON[@]}" -o "$TMP/x" --act-observer max >/dev/null 2>&1
check "unknown observer is a usage error" test $? -eq 2

# 8-bit EMA: a static int8 model every command runs on the integer kernels
"$QBERT" qat "$M" "${COMMON[@]}" -o "$TMP/q8" >"$TMP/q8.txt" 2>"$TMP/q8.err"
check "qat succeeds" test $? -eq 0
check "qat reports the integer-kernel score" grep -q "with the integer kernels" "$TMP/q8.txt"
check "qat reports the time per epoch" grep -q "^time per epoch: [0-9.]* s training" "$TMP/q8.txt"
check "config: static int8, qat-ema" test "$(json_get "$TMP/q8/config.json" \
  'j["quantization_config"]["method"], j["quantization_config"]["bits"], j["quantization_config"]["activations"]["observer"]')" \
  = "static 8 qat-ema"
check "info: every linear but the classifier int8" \
  bash -c "'$QBERT' info '$TMP/q8' | grep -q 'static int8 (activations per-tensor, observer qat-ema): 26 linears, 1 fp32, 25 int8'"
acc=$(sed -n 's/^best epoch 1: dev accuracy \([0-9.]*\) .*/\1/p' "$TMP/q8.txt")
"$QBERT" eval "$TMP/q8" --data "$SST/dev.tsv" --limit $EVAL --max-length 64 --json >"$TMP/eval.json"
check "eval of OUT_DIR reproduces the reported accuracy ($acc)" \
  test "$(json_get "$TMP/eval.json" '"%.4f" % j["accuracy"]')" = "$acc"
check "no state file left after a finished run" test ! -e "$TMP/q8.state"

# --bits 4, 2, ternary: the packed low-bit formats, every linear but the
# classifier, run by every command (info, eval reproducing the DEV score)
modules() { # modules DIR: the distinct formats of quantization_config.modules
  json_get "$1/config.json" '" ".join(sorted(set(j["quantization_config"]["modules"].values())))'
}
SN=48 SEV=24
[ -n "$SANITIZE" ] && SN=32 SEV=12
SMALL=(--data "$TMP/train.tsv" --limit $SN --eval "$SST/dev.tsv" --eval-limit $SEV --batch 16 --max-length 64 --threads 2)
lowbit_run() { # lowbit_run NAME FORMAT INFO_TEXT ARGS...: qat, then config, info and eval of its OUT_DIR
  local name=$1 fmt=$2 info=$3
  shift 3
  "$QBERT" qat "$M" "${SMALL[@]}" -o "$TMP/$name" "$@" >"$TMP/$name.txt" 2>"$TMP/$name.err"
  local rc=$?
  check "$name: qat $* succeeds" test $rc -eq 0
  [ $rc -eq 0 ] || { head -3 "$TMP/$name.err" >&2; return; }
  check "$name: config modules are $fmt and the fp32 classifier" test "$(modules "$TMP/$name")" = "fp32 $fmt"
  check "$name: info says $info" bash -c "'$QBERT' info '$TMP/$name' | grep -q '$info'"
  local acc
  acc=$(sed -n 's/^best epoch 1: dev accuracy \([0-9.]*\) .*/\1/p' "$TMP/$name.txt")
  "$QBERT" eval "$TMP/$name" --data "$SST/dev.tsv" --limit $SEV --max-length 64 --json >"$TMP/$name.json"
  check "$name: eval of OUT_DIR reproduces the reported accuracy ($acc)" \
    test "$(json_get "$TMP/$name.json" '"%.4f" % j["accuracy"]')" = "$acc"
}
lowbit_run q4 int4 "25 int4 (groups of 128)" --bits 4 --act-observer lsq --freeze-observers-after 5
check "q4: config bits 4, observer qat-lsq, packed format" test "$(json_get "$TMP/q4/config.json" \
  'j["quantization_config"]["bits"], j["quantization_config"]["activations"]["observer"], j["quantization_config"]["weights"]["format"]')" \
  = "4 qat-lsq int4"
lowbit_run q2kd int2 "25 int2 (groups of 64)" --bits 2 --group-size 64 --distill --distill-hidden --temperature 2
check "q2kd: says the teacher is timed" grep -q "time per epoch: .*(teacher included)" "$TMP/q2kd.txt"
lowbit_run qt ternary "25 ternary" --bits ternary --group-size channel --teacher "$M"
"$QBERT" predict "$TMP/qt" "a moving, funny film" >/dev/null 2>&1
check "qt: predict runs the ternary model" test $? -eq 0

# bad input: usage errors (exit 2), and teachers that do not fit (exit 1,
# one line naming the teacher)
usage() { # usage NAME ARGS...: exit status 2
  "$QBERT" qat "$M" "${SMALL[@]}" -o "$TMP/bad" "$@" >/dev/null 2>"$TMP/bad.err"
  check "$1 is a usage error" test $? -eq 2
}
usage "--temperature 0" --distill --temperature 0
usage "--temperature -1" --distill --temperature -1
usage "--group-size with 8-bit weights" --bits 8 --group-size 64
usage "--weight-zero-point with ternary" --bits ternary --weight-zero-point
bad_teacher() { # bad_teacher WHAT DIR PATTERN
  "$QBERT" qat "$M" "${SMALL[@]}" -o "$TMP/bad" --bits 2 --teacher "$2" >/dev/null 2>"$TMP/bad.err"
  check "teacher with other $1: exit 1" test $? -eq 1
  check "teacher with other $1: one line naming $2" \
    bash -c "test \$(wc -l <'$TMP/bad.err') -eq 1 && grep -q '$2' '$TMP/bad.err' && grep -q '$3' '$TMP/bad.err'"
  check "teacher with other $1: no OUT_DIR" test ! -e "$TMP/bad"
}
[ -e "$SHARED/models/bert-mini-conll" ] && bad_teacher labels "$SHARED/models/bert-mini-conll" "labels"
[ -e "$SHARED/models/albert-mini-sst2" ] && bad_teacher tokenizer "$SHARED/models/albert-mini-sst2" "tokenizer"
# a bare encoder has no logits to distil from
mkdir -p "$TMP/bare"
cp "$M/vocab.txt" "$TMP/bare/"
retile "$M/model.safetensors" "$TMP/bare/model.safetensors" "del h['classifier.weight'], h['classifier.bias']"
$PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['architectures']=['BertModel']; json.dump(c, open(sys.argv[2],'w'))" \
  "$M/config.json" "$TMP/bare/config.json"
bad_teacher "no head" "$TMP/bare" "no classification head"
# the same vocabulary through tokenizer.json is the same tokenizer
TJ=$SHARED/tokenizers/bert-base-uncased
if [ -e "$TJ/tokenizer.json" ]; then
  cp -r "$M" "$TMP/tj" && cp "$TJ/tokenizer.json" "$TMP/tj/"
  "$QBERT" qat "$M" "${SMALL[@]}" -o "$TMP/tjout" --bits 4 --teacher "$TMP/tj" >/dev/null 2>"$TMP/tj.err"
  check "a teacher whose tokenizer.json holds the student's vocab.txt ($(head -c 100 "$TMP/tj.err"))" test $? -eq 0
fi
printf 'sentence\tlabel\ngood movie\t1\ndull\t5\n' >"$TMP/dev5.tsv"
"$QBERT" qat "$M" --data "$TMP/train.tsv" --limit $SN --eval "$TMP/dev5.tsv" -o "$TMP/bad" --bits 4 >/dev/null 2>"$TMP/bad.err"
rc=$?
check "a DEV label the training data lacks: exit 1, no OUT_DIR" test $rc -eq 1 -a ! -e "$TMP/bad"
check "  named with its line" grep -q "dev5.tsv:3: label '5' never occurs in the training data" "$TMP/bad.err"
# a sentence model retrained on tags: a token model, without the pooler its graph never runs
CONLL=$SHARED/data/conll2003
if [ -e "$CONLL/train.txt" ]; then
  "$QBERT" qat "$M" --data "$CONLL/train.txt" --limit $SN --eval "$CONLL/valid.txt" --eval-limit $SEV --max-length 32 \
    --bits 4 -o "$TMP/qner" >"$TMP/qner.txt" 2>"$TMP/qner.err"
  check "qat of a sentence model on CoNLL tags ($(head -c 100 "$TMP/qner.err"))" test -f "$TMP/qner/model.safetensors"
  check "  a token model, int4 but the classifier" \
    bash -c "'$QBERT' info '$TMP/qner' | grep -q 'token-classification' && '$QBERT' info '$TMP/qner' | grep -q '1 fp32, 24 int4'"
  check "  no pooler in its tensors or config" \
    bash -c "'$QBERT' info '$TMP/qner' --json --tensors >'$TMP/qner.json' && ! grep -q pooler '$TMP/qner.json' '$TMP/qner/config.json'"
fi

# --resume: an uninterrupted run, then the same run killed with SIGKILL at
# random moments and resumed until it finishes: the same bytes.
R=(--epochs 2 --save-every 3 --seed 5)
"$QBERT" qat "$M" "${COMMON[@]}" "${R[@]}" -o "$TMP/full" >/dev/null 2>&1
check "uninterrupted 2-epoch run" test -f "$TMP/full/model.safetensors"
STATE=$TMP/kill.state
"$QBERT" qat "$M" "${COMMON[@]}" "${R[@]}" -o "$TMP/kill" --state "$STATE" >/dev/null 2>&1 &
pid=$!
kills=0
for delay in 0.5 0.2 0.7 0.3 0.4 0.6; do
  # wait until a state exists, then let it run a random while and kill it
  for _ in $(seq 600); do [ -e "$STATE" ] || ! kill -0 $pid 2>/dev/null && break; sleep 0.05; done
  sleep "$delay"
  kill -0 $pid 2>/dev/null || break
  kill -9 $pid 2>/dev/null && wait $pid 2>/dev/null
  kills=$((kills + 1))
  "$QBERT" qat "$M" "${COMMON[@]}" "${R[@]}" -o "$TMP/kill" --state "$STATE" --resume "$STATE" \
    >"$TMP/resume.txt" 2>"$TMP/resume.err" &
  pid=$!
done
wait $pid
check "resumed run finishes" test $? -eq 0
echo "  killed $kills times"
check "killed at least once" test $kills -ge 1
check "killed and resumed == uninterrupted (byte-identical int8 model)" \
  cmp -s "$TMP/full/model.safetensors" "$TMP/kill/model.safetensors"
check "resume: no temporary files left" bash -c "! ls -d '$TMP'/kill.*tmp* '$TMP'/*.old-* 2>/dev/null"
check "resume: an epoch with its conversion takes no less than its training" $PY - "$TMP/resume.txt" <<'PYEOF'
import re, sys
m = re.search(r"time per epoch: ([0-9.]+) s training.*, ([0-9.]+) s with conversion", open(sys.argv[1]).read())
sys.exit(0 if m and float(m.group(2)) >= float(m.group(1)) else 1)
PYEOF

# resuming under other settings, or from a missing or broken state, fails clearly
"$QBERT" qat "$M" "${COMMON[@]}" --epochs 2 --save-every 3 --seed 5 -o "$TMP/s" --state "$TMP/s.state" --limit 80 \
  --save-every 2 >/dev/null 2>&1 &
spid=$!
for _ in $(seq 600); do [ -e "$TMP/s.state" ] || ! kill -0 $spid 2>/dev/null && break; sleep 0.05; done
kill -9 $spid 2>/dev/null; wait $spid 2>/dev/null
if [ -e "$TMP/s.state" ]; then
  "$QBERT" qat "$M" "${COMMON[@]}" --epochs 2 --seed 6 --limit 80 -o "$TMP/s" --resume "$TMP/s.state" \
    >/dev/null 2>"$TMP/f.err"
  check "resume with another seed: exit 1" test $? -eq 1
  check "resume with another seed: names it" grep -q "other settings: it had 'seed 5', this run has 'seed 6'" "$TMP/f.err"
  "$QBERT" qat "$M" "${COMMON[@]}" --eval-limit 7 --epochs 2 --seed 5 --limit 80 -o "$TMP/s" \
    --resume "$TMP/s.state" >/dev/null 2>"$TMP/f.err"
  check "resume with another --eval-limit: names it" grep -q "it had 'dev .*(limit $EVAL)', this run has 'dev .*(limit 7)'" "$TMP/f.err"
  cp -r "$M" "$TMP/foreign"
  "$QBERT" qat "$M" "${COMMON[@]}" --epochs 2 --seed 5 --limit 80 --save-every 2 -o "$TMP/foreign" \
    --resume "$TMP/s.state" >/dev/null 2>"$TMP/f.err"
  check "resume into another model's directory: exit 1" test $? -eq 1
  check "resume into another model's directory: says so" grep -q "foreign: .*not this run's" "$TMP/f.err"
  check "resume into another model's directory: untouched" \
    cmp -s "$M/model.safetensors" "$TMP/foreign/model.safetensors"
  head -c 1000 "$TMP/s.state" >"$TMP/trunc.state"
  "$QBERT" qat "$M" "${COMMON[@]}" --epochs 2 --seed 5 --limit 80 --save-every 2 -o "$TMP/s" \
    --resume "$TMP/trunc.state" >/dev/null 2>"$TMP/f.err"
  check "truncated state: exit 1 naming the file" bash -c "test $? -eq 1 && grep -q trunc.state '$TMP/f.err'"
else
  fail "the short run left no state to resume"
fi
"$QBERT" qat "$M" "${COMMON[@]}" -o "$TMP/y" --resume "$TMP/none.state" >/dev/null 2>"$TMP/f.err"
check "missing state: exit 1" test $? -eq 1
check "missing state: message" grep -q "none.state: no such training state" "$TMP/f.err"

# a run that diverges in a later epoch stops and keeps the last good one:
# warm-up over the whole run makes epoch 1's only update a no-op (lr 0), and
# epoch 2's lr of 1e30 wrecks the weights.
head -n 17 "$SST/train.tsv" >"$TMP/t16.tsv"
"$QBERT" train "$M" --data "$TMP/t16.tsv" --eval "$SST/dev.tsv" --eval-limit 20 --batch 16 --epochs 4 \
  --warmup 1 --clip 0 --lr 1e30 --threads 2 -o "$TMP/div" >"$TMP/div.out" 2>"$TMP/div.err"
check "diverging run: exit 1" test $? -eq 1
check "diverging run: non-finite loss named" grep -q "loss is [-a-z]* at epoch [2-4], step 1; stopped" "$TMP/div.err"
check "diverging run: says which epoch OUT_DIR keeps" grep -q "div keeps epoch [1-3]" "$TMP/div.err"
check "diverging run: the kept checkpoint loads and scores" \
  bash -c "'$QBERT' eval '$TMP/div' --data '$SST/dev.tsv' --limit 20 --max-length 64 | grep -q accuracy"
# its state, saved after a later epoch, cannot rebuild the kept one: resumed
# without OUT_DIR it is refused before training, not reported as kept
rm -rf "$TMP/div"
"$QBERT" train "$M" --data "$TMP/t16.tsv" --eval "$SST/dev.tsv" --eval-limit 20 --batch 16 --epochs 4 \
  --warmup 1 --clip 0 --lr 1e30 --threads 2 -o "$TMP/div" --resume "$TMP/div.state" >"$TMP/div.out" 2>"$TMP/div.err"
check "diverging run resumed without OUT_DIR: exit 1" test $? -eq 1
check "  refused: its best epoch is missing ($(head -c 160 "$TMP/div.err"))" grep -q "div: missing, with the best epoch" "$TMP/div.err"

finish
