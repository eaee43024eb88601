#!/usr/bin/env bash
# Pre-train -> fine-tune -> QAT -> eval, all in qbert (issue 18, bar 5),
# sized to a few minutes on 2 cores:
#
#   bench/pretrain_pipeline.sh [--model DIR] [--pretrain-texts 3000] [--pretrain-max-length 64]
#                              [--pretrain-batch 8] [--pretrain-lr 5e-4] [--whole-word-mask]
#                              [--finetune-examples 2000] [--qat-examples 1000] [--threads 2]
#                              [--control] [--keep DIR]
#
# 1. qbert train --task mlm: masked-LM pre-training on IMDB train reviews
#    (domain text) from --model's encoder with a fresh masked-LM head; the
#    held-out MLM loss and perplexity on IMDB test reviews (fixed masks)
#    before and after.  The default model is bert-mini-sst2: ../shared has
#    no masked-LM checkpoint, so its encoder stands for the pre-trained body.
#    A fresh head starts far off (its decoder bias at 0, loss above
#    ln(vocab)): the defaults favour many small steps (batches of 8 reviews
#    cut at 64 tokens) in about two minutes.
# 2. qbert train on SST-2 train from the pre-trained model (a fresh
#    classification head): accuracy on SST-2 dev.
# 3. qbert qat --bits 8 from the fine-tuned model: the static int8 model.
# 4. qbert eval of the int8 model on SST-2 dev (integer kernels).
# Each stage prints its metric and wall time; the last line the total.
# --control also fine-tunes --model itself the same way (a new head, no
# pre-training), for comparison.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
PY=/usr/bin/python3

model=$SHARED/models/bert-mini-sst2
pre_n=3000; pre_len=64; pre_batch=8; pre_lr=5e-4; ft_n=2000; qat_n=1000; threads=2; wwm=(); keep=""; control=0
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift ;;
    --pretrain-texts) pre_n=$2; shift ;;
    --finetune-examples) ft_n=$2; shift ;;
    --qat-examples) qat_n=$2; shift ;;
    --threads) threads=$2; shift ;;
    --pretrain-lr) pre_lr=$2; shift ;;
    --pretrain-max-length) pre_len=$2; shift ;;
    --pretrain-batch) pre_batch=$2; shift ;;
    --whole-word-mask) wwm=(--whole-word-mask) ;;
    --control) control=1 ;;
    --keep) keep=$2; shift ;;
    -h|--help) sed -n "2,24p" "$0" | sed "s/^# \{0,1\}//"; exit 0 ;;
    *) echo "$0: unknown option $1 (--help lists them)" >&2; exit 2 ;;
  esac
  shift
done
for f in "$model/config.json" "$SHARED/data/imdb/train-8000.tsv" "$SHARED/data/imdb/test-2000.tsv" \
  "$SHARED/data/sst2/train.tsv" "$SHARED/data/sst2/dev.tsv" "$QBERT"; do
  [ -e "$f" ] || { echo "$0: $f not found" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
[ -n "$keep" ] && { mkdir -p "$keep"; WORK=$keep; }
SST=$SHARED/data/sst2
json() { $PY -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
clock() { date +%s.%N; }
since() { $PY -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(clock)"; }

echo "model $model; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads threads"
echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
t_all=$(clock)

# 1. pre-training on IMDB text (plain text, one review a line, <br /> as spaces)
awk -F'\t' -v n="$pre_n" 'NR > 1 && NR <= n + 1 { gsub(/<br \/>/, " ", $4); print $4 }' \
  "$SHARED/data/imdb/train-8000.tsv" >"$WORK/imdb-train.txt"
awk -F'\t' 'NR > 1 && NR <= 201 { gsub(/<br \/>/, " ", $4); print $4 }' \
  "$SHARED/data/imdb/test-2000.tsv" >"$WORK/imdb-heldout.txt"
t=$(clock)
"$QBERT" train "$model" --task mlm --data "$WORK/imdb-train.txt" --eval "$WORK/imdb-heldout.txt" \
  "${wwm[@]}" --epochs 1 --batch "$pre_batch" --max-length "$pre_len" --lr "$pre_lr" --threads "$threads" --force \
  -o "$WORK/pretrained" >"$WORK/1.txt" 2>"$WORK/1.err" || { cat "$WORK/1.err" >&2; exit 1; }
before=$(sed -n 's/^before training  dev MLM loss \([0-9.]*\).*/\1/p' "$WORK/1.txt")
after=$(sed -n 's/^best epoch [0-9]*: dev MLM loss \([0-9.]*\).*/\1/p' "$WORK/1.txt")
tokens=$(sed -n 's/.*; \([0-9]*\) masked tokens).*/\1/p' "$WORK/1.txt")
printf "1 pre-train (MLM, %s IMDB reviews, max %s tokens, batch %s, lr %s%s): held-out MLM loss %.4f -> %.4f, perplexity %.1f -> %.1f (%s masked tokens of 200 test reviews); %s s\n" \
  "$pre_n" "$pre_len" "$pre_batch" "$pre_lr" "${wwm:+, whole words}" "$before" "$after" "$($PY -c "import math; print(math.exp($before))")" \
  "$($PY -c "import math; print(math.exp($after))")" "$tokens" "$(since "$t")"
"$QBERT" fill-mask "$WORK/pretrained" "this movie was [MASK] , i loved every minute of it ." --top-k 3 --json \
  >"$WORK/fill.json"
echo "  fill-mask 'this movie was [MASK] , i loved every minute of it .': $(json "$WORK/fill.json" \
  '", ".join("%s %.3f" % (c["token"], c["score"]) for c in j["masks"][0]["top"])')"

# 2. fine-tuning on SST-2
finetune() { # finetune FROM OUT LABEL
  local t; t=$(clock)
  "$QBERT" train "$1" --data "$SST/train.tsv" --limit "$ft_n" --eval "$SST/dev.tsv" --epochs 1 --new-head \
    --batch 16 --max-length 66 --lr 1e-4 --threads "$threads" --force -o "$2" >"$2.txt" 2>"$2.err" \
    || { cat "$2.err" >&2; exit 1; }
  "$QBERT" eval "$2" --data "$SST/dev.tsv" --max-length 66 --threads "$threads" --json >"$2.json"
  printf "%s (SST-2, %s sentences, new head): dev accuracy %.4f (%s sentences); %s s\n" "$3" "$ft_n" \
    "$(json "$2.json" 'j["accuracy"]')" "$(json "$2.json" 'j["n"]')" "$(since "$t")"
}
finetune "$WORK/pretrained" "$WORK/finetuned" "2 fine-tune"
[ "$control" = 1 ] && finetune "$model" "$WORK/control" "  control: --model fine-tuned without pre-training"

# 3. QAT to int8
t=$(clock)
"$QBERT" qat "$WORK/finetuned" --data "$SST/train.tsv" --limit "$qat_n" --eval "$SST/dev.tsv" --bits 8 \
  --batch 16 --max-length 66 --threads "$threads" --force -o "$WORK/int8" >"$WORK/3.txt" 2>"$WORK/3.err" \
  || { cat "$WORK/3.err" >&2; exit 1; }
printf "3 QAT int8 (%s sentences, 1 epoch): %s; %s s\n" "$qat_n" \
  "$(sed -n 's/^best epoch 1: \(dev accuracy [0-9.]*\).*/\1 with the integer kernels/p' "$WORK/3.txt")" "$(since "$t")"

# 4. the deployed model, as `qbert eval` scores it
t=$(clock)
"$QBERT" eval "$WORK/int8" --data "$SST/dev.tsv" --max-length 66 --threads "$threads" --json >"$WORK/4.json"
printf "4 eval int8 model (%s) on SST-2 dev: accuracy %.4f; %s s\n" \
  "$("$QBERT" info "$WORK/int8" | sed -n 's/^precision *//p' | cut -d: -f1)" "$(json "$WORK/4.json" 'j["accuracy"]')" \
  "$(since "$t")"
echo "total wall time $(since "$t_all") s; load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
