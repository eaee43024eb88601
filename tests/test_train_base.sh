#!/usr/bin/env bash
# train and qat from a body without a head, as AutoModelForSequenceClassification
# starts one: bert-mini-sst2's encoder saved as a bare BertModel (pooler
# kept) and as a BertForMaskedLM (no pooler, an MLM tensor beside it) get a
# fresh head (and pooler), learn SST-2 from a small slice well above chance,
# and the trained directory is an ordinary sequence classifier (the LM
# tensor is dropped silently, as HF does).
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/bert-mini-sst2
need_shared data/sst2/train.tsv
M=$SHARED/models/bert-mini-sst2
SST=$SHARED/data/sst2
N=400 NE=200
[ -n "$SANITIZE" ] && N=32 NE=32
head -n $((N + 1)) "$SST/train.tsv" >"$TMP/train.tsv"
COMMON=(--eval "$SST/dev.tsv" --eval-limit $NE --epochs 2 --batch 16 --max-length 64 --threads 2 --lr 2e-4)

# body DIR CLASS PYTHON: M's weights minus its head (and what PYTHON
# rewrites of the header `h`), config.json saying CLASS without labels
body() {
  mkdir "$1" && cp "$M/vocab.txt" "$M/tokenizer_config.json" "$1/"
  retile "$M/model.safetensors" "$1/model.safetensors" "
for k in ['classifier.weight', 'classifier.bias']: del h[k]
$3"
  $PY - "$M/config.json" "$1/config.json" "$2" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
for k in ("id2label", "label2id", "finetuning_task"): c.pop(k, None)
c["architectures"] = [sys.argv[3]]
json.dump(c, open(sys.argv[2], "w"), indent=2)
PYEOF
}
# BertModel's layout: names without "bert."
body "$TMP/base" BertModel "
h = {k[5:] if k.startswith('bert.') else k: v for k, v in h.items()}
begin = {k[5:] if k.startswith('bert.') else k: v for k, v in begin.items()}"
# the masked-LM layout: no pooler, BertForMaskedLM's head beside the body
# (its tensors alias body tensors of the same shapes; the bias takes the
# first vocab_size floats of the word embeddings)
body "$TMP/mlm" BertForMaskedLM "
for k in ['bert.pooler.dense.weight', 'bert.pooler.dense.bias']: del h[k]
alias = {'dense.weight': 'encoder.layer.0.attention.self.query.weight',
         'dense.bias': 'encoder.layer.0.attention.self.query.bias',
         'LayerNorm.weight': 'embeddings.LayerNorm.weight', 'LayerNorm.bias': 'embeddings.LayerNorm.bias'}
for k, v in alias.items():
    h['cls.predictions.transform.' + k] = dict(h['bert.' + v]); begin['cls.predictions.transform.' + k] = begin['bert.' + v]
V = h['bert.embeddings.word_embeddings.weight']['shape'][0]
h['cls.predictions.bias'] = {'dtype': 'F32', 'shape': [V], 'data_offsets': [0, 4 * V]}
begin['cls.predictions.bias'] = begin['bert.embeddings.word_embeddings.weight']"

check "the bare body is a bare encoder" bash -c "'$QBERT' info '$TMP/base' | grep -q 'BertModel'"
for kind in base mlm; do
  "$QBERT" train "$TMP/$kind" --data "$TMP/train.tsv" "${COMMON[@]}" --seed 3 -o "$TMP/$kind-out" \
    >"$TMP/$kind.txt" 2>"$TMP/$kind.err"
  rc=$?
  check "$kind: train succeeds ($(head -c 300 "$TMP/$kind.err"))" test $rc -eq 0
  check "$kind: a new head" grep -q "new head, 2 labels" "$TMP/$kind.txt"
  check "$kind: a sequence classifier" \
    test "$(json_get "$TMP/$kind-out/config.json" 'j["architectures"][0]')" = "BertForSequenceClassification"
  check "$kind: labels from the data" test "$(json_get "$TMP/$kind-out/config.json" 'sorted(j["label2id"])')" = "['0', '1']"
  l1=$(sed -n 's/^epoch 1\/2  train loss \([0-9.]*\).*/\1/p' "$TMP/$kind.txt")
  l2=$(sed -n 's/^epoch 2\/2  train loss \([0-9.]*\).*/\1/p' "$TMP/$kind.txt")
  acc=$(sed -n 's/^best epoch [0-9]*: dev accuracy \([0-9.]*\),.*/\1/p' "$TMP/$kind.txt")
  if [ -z "$SANITIZE" ]; then
    check "$kind: loss goes down ($l1 -> $l2)" $PY -c "import sys; sys.exit(not float('$l2') < float('$l1'))"
    check "$kind: dev accuracy $acc above chance" $PY -c "import sys; sys.exit(not float('$acc') >= 0.65)"
  fi
  check "$kind: predict runs on OUT_DIR" bash -c "'$QBERT' predict '$TMP/$kind-out' 'a fine film' | grep -qP '^[01]\t'"
done
# tensor_corr A NAME_A B NAME_B: the correlation of two float32 tensors
tensor_corr() {
  $PY - "$@" <<'PYEOF'
import array, json, struct, sys
def read(path, name):
    d = open(path, "rb").read()
    n = struct.unpack("<Q", d[:8])[0]
    b, e = json.loads(d[8:8 + n])[name]["data_offsets"]
    return array.array("f", d[8 + n + b:8 + n + e])
x, y = read(sys.argv[1], sys.argv[2]), read(sys.argv[3], sys.argv[4])
mx, my = sum(x) / len(x), sum(y) / len(y)
sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
print("%.3f" % (sxy / (sxx * syy) ** 0.5))
PYEOF
}
c=$(tensor_corr "$M/model.safetensors" bert.pooler.dense.weight "$TMP/base-out/model.safetensors" pooler.dense.weight)
check "base: the checkpoint's pooler is kept (correlation $c)" $PY -c "import sys; sys.exit(not $c > 0.9)"
c=$(tensor_corr "$M/model.safetensors" bert.pooler.dense.weight "$TMP/mlm-out/model.safetensors" bert.pooler.dense.weight)
check "mlm: the pooler is fresh (correlation $c)" $PY -c "import sys; sys.exit(not abs($c) < 0.1)"
check "mlm: a fresh pooler under the checkpoint's prefix" \
  bash -c "'$QBERT' info '$TMP/mlm-out' --json --tensors | grep -q 'bert.pooler.dense.weight'"

# the fresh head is drawn from --seed
"$QBERT" train "$TMP/mlm" --data "$TMP/train.tsv" "${COMMON[@]}" --epochs 1 --seed 4 -o "$TMP/mlm-4" >/dev/null 2>&1
"$QBERT" train "$TMP/mlm" --data "$TMP/train.tsv" "${COMMON[@]}" --epochs 1 --seed 4 -o "$TMP/mlm-4b" >/dev/null 2>&1
"$QBERT" train "$TMP/mlm" --data "$TMP/train.tsv" "${COMMON[@]}" --epochs 1 --seed 5 -o "$TMP/mlm-5" >/dev/null 2>&1
check "same seed, same weights" cmp -s "$TMP/mlm-4/model.safetensors" "$TMP/mlm-4b/model.safetensors"
check "another seed, another head" bash -c "! cmp -s '$TMP/mlm-4/model.safetensors' '$TMP/mlm-5/model.safetensors'"

# qat from the masked-LM body: a static int8 model with the fresh pooler quantized too
"$QBERT" qat "$TMP/mlm" --data "$TMP/train.tsv" "${COMMON[@]}" --epochs 1 -o "$TMP/qat" >"$TMP/qat.txt" 2>&1
rc=$?
check "qat from a body succeeds ($(tail -c 300 "$TMP/qat.txt"))" test $rc -eq 0
check "qat: static int8 pooler" bash -c "'$QBERT' info '$TMP/qat' --json --tensors | grep -q 'bert.pooler.dense.weight_scale'"
check "qat: eval runs" bash -c "'$QBERT' eval '$TMP/qat' --data '$SST/dev.tsv' --limit 20 | grep -q accuracy"

finish
