#!/usr/bin/env bash
# qbert train end to end, on small slices so it runs in seconds: SST-2
# fine-tuning that keeps the checkpoint's head, the DEV score reproduced by
# `qbert eval`, byte-identical reruns for one seed, a fresh CoNLL token head
# on the SST-2 encoder, POS tags (no entities) picked by word accuracy,
# failures that leave no OUT_DIR behind, state files that are not this
# run's, and --resume refusing an OUT_DIR without the state's best epoch.
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/bert-mini-sst2
need_shared data/sst2/train.tsv
need_shared data/conll2003/train.txt
M=$SHARED/models/bert-mini-sst2
SST=$SHARED/data/sst2
CONLL=$SHARED/data/conll2003
N=200
[ -n "$SANITIZE" ] && N=32
head -n $((N + 1)) "$SST/train.tsv" >"$TMP/train.tsv"
COMMON=(--eval "$SST/dev.tsv" --eval-limit 100 --epochs 1 --batch 16 --max-length 64 --threads 2 --seed 7)

check "train --help" bash -c "'$QBERT' train --help | grep -q usage"
"$QBERT" train "$M" >/dev/null 2>&1; check "train without --data exits 2" test $? -eq 2

# SST-2: the labels are the checkpoint's, so its head is kept
"$QBERT" train "$M" --data "$TMP/train.tsv" "${COMMON[@]}" -o "$TMP/a" >"$TMP/a.txt" 2>"$TMP/a.err"
check "sst2 train succeeds" test $? -eq 0
check "sst2 keeps the head" grep -q "kept head, 2 labels" "$TMP/a.txt"
check "per-epoch summary" grep -q "^epoch 1/1  train loss [0-9.]*  dev accuracy" "$TMP/a.txt"
check "info loads OUT_DIR" bash -c "'$QBERT' info '$TMP/a' | grep -q 'BertForSequenceClassification'"
# (not cache/: info stamps a weights file it checked once the file is 10 s
# old, which a slow run reaches)
left=$(ls -I cache "$TMP")
check "only the final directory (found: $(echo $left))" test "$left" = "$(printf 'a\na.err\na.txt\ntrain.tsv')"
acc=$(sed -n 's/^best epoch 1: dev accuracy \([0-9.]*\),.*/\1/p' "$TMP/a.txt")
"$QBERT" eval "$TMP/a" --data "$SST/dev.tsv" --limit 100 --max-length 64 --json >"$TMP/eval.json"
check "eval reproduces the reported dev accuracy ($acc)" \
  test "$(json_get "$TMP/eval.json" '"%.4f" % j["accuracy"]')" = "$acc"

# the same seed and thread count: the same bytes
"$QBERT" train "$M" --data "$TMP/train.tsv" "${COMMON[@]}" -o "$TMP/b" >/dev/null 2>&1
check "second run succeeds" test -f "$TMP/b/model.safetensors"
check "same seed: byte-identical weights" cmp -s "$TMP/a/model.safetensors" "$TMP/b/model.safetensors"
check "training changed the weights" bash -c "! cmp -s '$M/model.safetensors' '$TMP/a/model.safetensors'"

# CoNLL from the SST-2 encoder: a fresh token head with the 9 tags
NS=100
[ -n "$SANITIZE" ] && NS=16
"$QBERT" train "$M" --data "$CONLL/train.txt" --limit $NS --eval "$CONLL/valid.txt" --eval-limit 50 --epochs 1 \
  --batch 16 --max-length 64 --threads 2 --lr 1e-3 -o "$TMP/ner" >"$TMP/ner.txt" 2>&1
check "conll train succeeds" test $? -eq 0
check "conll: new head" grep -q "new head, 9 labels" "$TMP/ner.txt"
check "conll: token classification" \
  test "$(json_get "$TMP/ner/config.json" 'j["architectures"][0]')" = "BertForTokenClassification"
check "conll: the 9 tags, O first" test "$(json_get "$TMP/ner/config.json" \
  '" ".join(j["id2label"][str(i)] for i in range(len(j["id2label"])))')" = "O B-LOC I-LOC B-MISC I-MISC B-ORG I-ORG B-PER I-PER"
check "conll: no pooler in a token model" bash -c "! '$QBERT' info '$TMP/ner' --json --tensors | grep -q pooler"
check "conll: eval runs" bash -c "'$QBERT' eval '$TMP/ner' --data '$CONLL/valid.txt' --limit 20 | grep -q 'entity F1'"

# POS tags (CoNLL's second column as the tags): no entities, so entity F1 is
# 0 every epoch and word accuracy must pick the best epoch
awk 'NF < 4 { print; next } { print $1, $2, $3, $2 }' "$CONLL/train.txt" | head -n 3000 >"$TMP/pos-train.txt"
awk 'NF < 4 { print; next } { print $1, $2, $3, $2 }' "$CONLL/valid.txt" | head -n 1500 >"$TMP/pos-valid.txt"
"$QBERT" train "$M" --data "$TMP/pos-train.txt" --limit $NS --eval "$TMP/pos-valid.txt" --eval-limit 50 --epochs 2 \
  --batch 16 --max-length 32 --threads 2 --lr 1e-3 -o "$TMP/pos" >"$TMP/pos.txt" 2>&1
check "pos train succeeds" test $? -eq 0
check "pos: epochs scored by word accuracy" test "$(grep -c '^epoch [12]/2 .* dev word accuracy' "$TMP/pos.txt")" -eq 2
check "pos: says word accuracy picks the best epoch" grep -q "word accuracy picks the best epoch" "$TMP/pos.txt"
check "pos: the best epoch has the highest word accuracy" $PY - "$TMP/pos.txt" <<'PYEOF'
import re, sys
t = open(sys.argv[1]).read()
acc = [float(a) for a in re.findall(r"^epoch \d+/2 .*dev word accuracy ([0-9.]+)", t, re.M)]
best = re.search(r"^best epoch (\d+): dev word accuracy ([0-9.]+)", t, re.M)
sys.exit(0 if acc and best and max(acc) > 0 and float(best.group(2)) == max(acc)
         and acc[int(best.group(1)) - 1] == max(acc) else 1)
PYEOF
rm -rf "$TMP/pos-train.txt" "$TMP/pos-valid.txt" "$TMP/pos"

# failures: a clear message, exit 1, and no OUT_DIR (nor staging directory)
fails() { # fails NAME PATTERN ARGS...: train must fail saying PATTERN
  local name=$1 pat=$2; shift 2
  "$QBERT" train "$M" "$@" >"$TMP/f.out" 2>"$TMP/f.err"
  local rc=$?
  check "$name: exit 1" test $rc -eq 1
  check "$name: message" grep -q "$pat" "$TMP/f.err"
}
fails "missing data" "nope.tsv" --data "$TMP/nope.tsv" "${COMMON[@]}" -o "$TMP/x1"
check "missing data: no OUT_DIR" bash -c "! ls -d '$TMP'/x1* 2>/dev/null"
printf 'sentence\tlabel\n' >"$TMP/empty.tsv"
fails "empty dataset" "empty.tsv" --data "$TMP/empty.tsv" "${COMMON[@]}" -o "$TMP/x2"
check "empty dataset: no OUT_DIR" bash -c "! ls -d '$TMP'/x2* 2>/dev/null"
printf 'sentence\tlabel\ngood film\t1\nbad film\n' >"$TMP/bad.tsv"
fails "bad row" "bad.tsv:3" --data "$TMP/bad.tsv" "${COMMON[@]}" -o "$TMP/x3"
mkdir "$TMP/ro" && chmod 555 "$TMP/ro"
if [ "$(id -u)" != 0 ]; then
  fails "unwritable -o" "ro/out" --data "$TMP/train.tsv" "${COMMON[@]}" -o "$TMP/ro/out"
  check "unwritable -o: nothing written" test -z "$(ls "$TMP/ro")"
fi
fails "unwritable -o (a file as parent)" "notadir" --data "$TMP/train.tsv" "${COMMON[@]}" -o "$TMP/a.txt/notadir"
fails "existing OUT_DIR" "already exists" --data "$TMP/train.tsv" "${COMMON[@]}" -o "$TMP/a"
check "existing OUT_DIR kept" cmp -s "$TMP/a/model.safetensors" "$TMP/b/model.safetensors"
mkdir -p "$TMP/holder" && cp "$TMP/train.tsv" "$TMP/holder/"
fails "--force on a directory holding the data" "holder: refusing to replace it: it holds .*train.tsv" \
  --data "$TMP/holder/train.tsv" "${COMMON[@]}" -o "$TMP/holder" --force
check "... data kept" test -s "$TMP/holder/train.tsv"
"$QBERT" train "$M" --data "$TMP/train.tsv" "${COMMON[@]}" --max-length 1000 -o "$TMP/ml" >/dev/null 2>"$TMP/ml.err"
check "--max-length past the positions: refused naming the model" \
  grep -qF "$M: --max-length 1000 exceeds the model's 512 positions" "$TMP/ml.err"
check "  no OUT_DIR" bash -c "! ls -d '$TMP'/ml '$TMP'/ml.tmp* 2>/dev/null"
# a NaN in the classifier bias is refused at load, naming it
mkdir "$TMP/nan" && cp "$M"/config.json "$M"/vocab.txt "$M"/model.safetensors "$TMP/nan/"
$PY - "$TMP/nan/model.safetensors" <<'PYEOF'
import json, struct, sys
f = open(sys.argv[1], "r+b")
n = struct.unpack("<Q", f.read(8))[0]
t = json.loads(f.read(n))["classifier.bias"]
f.seek(8 + n + t["data_offsets"][0])
f.write(struct.pack("<f", float("nan")))
PYEOF
"$QBERT" train "$TMP/nan" --data "$TMP/train.tsv" "${COMMON[@]}" -o "$TMP/x3" >"$TMP/f.out" 2>"$TMP/f.err"
check "NaN weight: exit 1" test $? -eq 1
check "NaN weight: refused at load" grep -q "tensor 'classifier.bias' holds NaN at element 0" "$TMP/f.err"
check "NaN weight: no OUT_DIR" bash -c "! ls -d '$TMP'/x3* 2>/dev/null"
# finite weights that overflow (3e38 in the classifier): the first loss is
# NaN, training stops
mkdir "$TMP/big" && cp "$M"/config.json "$M"/vocab.txt "$M"/model.safetensors "$TMP/big/"
$PY - "$TMP/big/model.safetensors" <<'PYEOF'
import json, struct, sys
f = open(sys.argv[1], "r+b")
n = struct.unpack("<Q", f.read(8))[0]
b, e = json.loads(f.read(n))["classifier.weight"]["data_offsets"]
f.seek(8 + n + b)
f.write(struct.pack("<f", 3e38) * ((e - b) // 4))
PYEOF
"$QBERT" train "$TMP/big" --data "$TMP/train.tsv" "${COMMON[@]}" -o "$TMP/x4" >"$TMP/f.out" 2>"$TMP/f.err"
check "non-finite loss: exit 1" test $? -eq 1
check "non-finite loss: message" grep -qE "loss is -?nan at epoch 1, step 1" "$TMP/f.err"
check "non-finite loss: no OUT_DIR" bash -c "! ls -d '$TMP'/x4* 2>/dev/null"
# DEV is read and tokenized before training: with weights whose first loss
# is NaN, DEV's bad line is what fails
printf 'sentence\tlabel\nbad \377\376 film\t0\ngood film\t1\n' >"$TMP/baddev.tsv"
"$QBERT" train "$TMP/big" --data "$TMP/train.tsv" --eval "$TMP/baddev.tsv" --epochs 1 --max-length 32 --threads 2 \
  -o "$TMP/x5" >"$TMP/f.out" 2>"$TMP/f.err"
check "unreadable DEV: exit 1" test $? -eq 1
check "unreadable DEV: named before training ($(head -c 120 "$TMP/f.err"))" grep -q "baddev.tsv:2: .*UTF-8" "$TMP/f.err"
check "unreadable DEV: no OUT_DIR, no state" bash -c "! ls -d '$TMP'/x5* 2>/dev/null"

# --state: a file that is not a training state is neither written over nor
# deleted, nor resumed from; an interrupted run's state is not silently
# replaced by a fresh run
SMALL=(--data "$TMP/train.tsv" --limit 64 --eval "$SST/dev.tsv" --eval-limit 20 --epochs 1 --max-length 32 --threads 2)
echo "precious" >"$TMP/precious.txt"
fails "--state on a foreign file" "precious.txt: exists and is not a qbert training state" "${SMALL[@]}" -o "$TMP/x6" \
  --state "$TMP/precious.txt"
check "--state on a foreign file: kept" test "$(cat "$TMP/precious.txt")" = "precious"
check "--state on a foreign file: no OUT_DIR" test ! -e "$TMP/x6"
fails "--resume from a foreign file" "precious.txt: not a qbert training state" "${SMALL[@]}" -o "$TMP/x6" \
  --resume "$TMP/precious.txt"

# A fresh sequence head under each family's own names: RoBERTa's and
# ELECTRA's classifier.dense and classifier.out_proj (from a bare body, or
# replacing a head with --new-head), which the saved model loads by
need_shared tools/make_random_checkpoint.py
for spec in "roberta-small-odd base" "roberta-small-odd seq --new-head" "electra-small base"; do
  read -r preset head extra <<<"$spec"
  d=$TMP/fam-$preset-$head
  $PY "$SHARED/tools/make_random_checkpoint.py" "$preset" "$d" --head "$head" >/dev/null
  "$QBERT" train "$d" "${SMALL[@]}" $extra -o "$d.out" >"$TMP/fam.txt" 2>&1
  check "$preset ($head$extra): a new sequence head trains and saves ($(tail -c 120 "$TMP/fam.txt"))" test $? -eq 0
  check "  under classifier.dense and classifier.out_proj, and predicts" bash -c \
    "'$QBERT' info '$d.out' --tensors | grep -q 'classifier.out_proj.weight' && '$QBERT' predict '$d.out' 'a fine film' >/dev/null"
done

# --resume: OUT_DIR must hold the best epoch the state recorded.  A run
# killed mid-epoch 2 (epoch 1 in OUT_DIR), then resumed without its OUT_DIR,
# into another model directory, or with another -o: refused, state kept.
R=(--data "$TMP/train.tsv" --eval "$SST/dev.tsv" --eval-limit 20 --epochs 2 --batch 16 --max-length 32 --threads 2)
state_at() { # state_at FILE: "EPOCH BATCH BEST_EPOCH" of a training state
  $PY - "$1" 2>/dev/null <<'PYEOF'
import json, struct, sys
f = open(sys.argv[1], "rb")
m = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))["__metadata__"]
print(m["epoch"], m["batch"], m["best_epoch"])
PYEOF
}
"$QBERT" train "$M" "${R[@]}" --save-every 1 -o "$TMP/r" >"$TMP/r.txt" 2>&1 &
pid=$!
for _ in $(seq 1200); do
  case "$(state_at "$TMP/r.state")" in "1 "[1-9]*" 1") break ;; esac
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
if [ -e "$TMP/r.state" ] && [ -e "$TMP/r" ]; then
  mv "$TMP/r" "$TMP/r.kept"
  fails "resume without OUT_DIR" "r: missing, with the best epoch 1" "${R[@]}" -o "$TMP/r" --resume "$TMP/r.state"
  check "resume without OUT_DIR: state kept, nothing written" bash -c "test -e '$TMP/r.state' && test ! -e '$TMP/r'"
  cp -r "$M" "$TMP/r"
  fails "resume into another model" "r: not this run's output" "${R[@]}" -o "$TMP/r" --resume "$TMP/r.state"
  check "resume into another model: it is untouched" cmp -s "$M/model.safetensors" "$TMP/r/model.safetensors"
  fails "resume with another -o" "saved its best epoch 1 to .*/r " "${R[@]}" -o "$TMP/r2" --resume "$TMP/r.state"
  fails "a fresh run over the state" "r.state: holds an interrupted run's state; continue it with --resume" \
    "${R[@]}" -o "$TMP/r3" --state "$TMP/r.state"
  rm -rf "$TMP/r"
  mv "$TMP/r.kept" "$TMP/r"
  "$QBERT" train "$M" "${R[@]}" -o "$TMP/r" --resume "$TMP/r.state" >"$TMP/r.txt" 2>&1
  check "resume with its OUT_DIR finishes ($(tail -c 200 "$TMP/r.txt"))" test $? -eq 0
  check "resume with its OUT_DIR: state removed" test ! -e "$TMP/r.state"
else
  fail "the killed run left no state mid-epoch 2 ($(state_at "$TMP/r.state"))"
fi
# saved at epoch ends only, the state holds the best epoch's weights: a run
# killed in epoch 2 and resumed without OUT_DIR rebuilds it, and ends as the
# run above did
"$QBERT" train "$M" "${R[@]}" --save-every 0 -o "$TMP/e" >"$TMP/e.txt" 2>&1 &
pid=$!
for _ in $(seq 1200); do grep -q "best, saved" "$TMP/e.txt" || ! kill -0 $pid 2>/dev/null && break; sleep 0.05; done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
if [ -e "$TMP/e.state" ] && [ "$(state_at "$TMP/e.state")" = "1 0 1" ]; then
  rm -rf "$TMP/e"
  "$QBERT" train "$M" "${R[@]}" -o "$TMP/e" --resume "$TMP/e.state" >"$TMP/e.txt" 2>&1
  check "resume without OUT_DIR from an epoch-end state: exit 0 ($(tail -c 200 "$TMP/e.txt"))" test $? -eq 0
  check "  OUT_DIR rebuilt: the same bytes as the run above" cmp -s "$TMP/r/model.safetensors" "$TMP/e/model.safetensors"
else
  fail "the killed run left no state at epoch 1's end ($(state_at "$TMP/e.state"))"
fi
# SIGTERM mid-run: the process dies of it, the state stays for --resume, and
# no staging directory or temporary file is left beside OUT_DIR
mkdir -p "$TMP/t"
"$QBERT" train "$M" "${R[@]}" --save-every 1 -o "$TMP/t/out" >/dev/null 2>"$TMP/t.err" &
pid=$!
for _ in $(seq 1200); do [ -e "$TMP/t/out.state" ] || ! kill -0 $pid 2>/dev/null && break; sleep 0.05; done
kill -TERM $pid 2>/dev/null
wait $pid; rc=$?
check "SIGTERM mid-train: dies of it ($rc, $(head -c 80 "$TMP/t.err"))" test $rc -eq 143
check "SIGTERM mid-train: the state kept, nothing half-written" \
  bash -c "test -e '$TMP/t/out.state' && test -z \"\$(ls -A '$TMP/t' | grep -v '^out\(\.state\)\?\$')\""

# --resume FILE without --state goes on in FILE, and removes it at the end
mv "$TMP/t/out.state" "$TMP/t/moved.state"
"$QBERT" train "$M" "${R[@]}" --resume "$TMP/t/moved.state" -o "$TMP/t/out" >"$TMP/t3.txt" 2>&1
check "resume without --state: finishes ($(tail -c 100 "$TMP/t3.txt"))" test $? -eq 0
check "  in the state it resumed, removed at the end" test -z "$(ls -A "$TMP/t" | grep -v '^out$')"
# refused before any training: a --state in a missing directory, --new-head
# with --task mlm; a temporary state file of a dead process is swept
fails "--state in a missing directory" "nodir/x.state: parent directory .* does not exist" "${SMALL[@]}" \
  -o "$TMP/x8" --state "$TMP/nodir/x.state"
check "  no OUT_DIR" test ! -e "$TMP/x8"
fails "--new-head with --task mlm" "new-head starts a fresh classifier" --task mlm --new-head "${SMALL[@]}" -o "$TMP/x9"
: >"$TMP/s9.state.tmp-99999999-0123abcd"
"$QBERT" train "$M" "${SMALL[@]}" -o "$TMP/s9" --state "$TMP/s9.state" >/dev/null 2>&1
check "a dead process's temporary state file is removed" test ! -e "$TMP/s9.state.tmp-99999999-0123abcd"
# a tag neither the training data nor the model's token head has is refused
printf 'Paris NNP B-NP B-FOO\nis VBZ B-VP O\n\n' >"$TMP/devfoo.txt"
"$QBERT" train "$SHARED/models/bert-mini-conll" --data "$CONLL/train.txt" --limit 20 --eval "$TMP/devfoo.txt" \
  --epochs 1 --max-length 32 -o "$TMP/x10" >/dev/null 2>"$TMP/x10.err"
rc=$?
check "a DEV tag no one trains: exit 1 ($(head -c 100 "$TMP/x10.err"))" \
  bash -c "test $rc -eq 1 && grep -q \"tag 'B-FOO' is in neither\" '$TMP/x10.err' && test ! -e '$TMP/x10'"

finish
