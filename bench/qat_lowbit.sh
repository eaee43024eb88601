#!/usr/bin/env bash
# Distillation recovers 2-bit weights (issue 16, bar 4): on bert-mini-sst2
# (SST-2 train -> dev accuracy) and bert-mini-conll (CoNLL train -> valid
# entity F1), one epoch each:
#   FP32 | RTN PTQ (static, --calib on training rows) | QAT | QAT --distill
# for INT2 (groups of 128) and ternary, with each QAT run's time per epoch.
#   bench/qat_lowbit.sh [--out DIR] [--sst-limit N] [--conll-limit N] [--only sst|conll]
#                       [--hidden] [--lr X] [--threads N] [--no-ptq]
# --sst-limit/--conll-limit train on the first N rows (a labelled subset of
# the epoch, same steps for every QAT row); the table then also projects the
# full epoch's time from the measured seconds per example.  GPTQ rows are
# placeholders: `qbert quantize --rounding gptq` is measured by its own bench.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
OUT="" SST_LIMIT=0 CONLL_LIMIT=0 ONLY="" HIDDEN=() LR=() THREADS=2 PTQ=1
while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=$2; shift 2 ;;
    --sst-limit) SST_LIMIT=$2; shift 2 ;;
    --conll-limit) CONLL_LIMIT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --hidden) HIDDEN=(--distill-hidden); shift ;;
    --lr) LR=(--lr "$2"); shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --no-ptq) PTQ=0; shift ;;
    *) echo "usage: $0 [--out DIR] [--sst-limit N] [--conll-limit N] [--only sst|conll] [--hidden] [--lr X]" >&2
       exit 2 ;;
  esac
done
[ -n "$OUT" ] || OUT=$(mktemp -d)
mkdir -p "$OUT"
PY=/usr/bin/python3
# name | model | train | dev | max length | metric | training rows (0: all)
cases=()
[ "$ONLY" = conll ] || cases+=("sst2|bert-mini-sst2|sst2/train.tsv|sst2/dev.tsv|66|accuracy|$SST_LIMIT")
[ "$ONLY" = sst ] || cases+=("conll|bert-mini-conll|conll2003/train.txt|conll2003/valid.txt|128|entity_f1|$CONLL_LIMIT")

metric_of() { $PY -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

row() { # row CASE METHOD METRIC FP32 STEPS S_PER_EPOCH FULL_EPOCH_S
  local d="-"
  [ "$3" != "-" ] && d=$($PY -c "print('%+.2f' % (100 * ($3 - $4)))")
  printf '%-6s %-24s %8s %8s %8s %7s %10s %12s\n' "$1" "$2" "$3" "$4" "$d" "$5" "$6" "$7" | tee -a "$OUT/table.txt"
}

echo "# $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $THREADS threads; $(date -u +%FT%TZ)" | tee "$OUT/table.txt"
printf '%-6s %-24s %8s %8s %8s %7s %10s %12s\n' task method metric fp32 delta_pt steps s/epoch full_epoch_s \
  | tee -a "$OUT/table.txt"
for c in "${cases[@]}"; do
  IFS='|' read -r name model train dev len metric limit <<<"$c"
  M=$SHARED/models/$model
  TRAIN=$SHARED/data/$train DEV=$SHARED/data/$dev
  "$QBERT" eval "$M" --data "$DEV" --max-length "$len" --json >"$OUT/$name.fp32.json"
  fp32=$(metric_of "$OUT/$name.fp32.json" "$metric")
  row "$name" "FP32" "$fp32" "$fp32" - - -
  for bits in 2 ternary; do
    [ $PTQ = 1 ] || break
    label=$([ $bits = 2 ] && echo "int2-g128" || echo "ternary-g128")
    q=$OUT/$name.ptq-$bits
    "$QBERT" quantize "$M" -o "$q" --force --method static --bits $bits --calib "$TRAIN" --max-length "$len" \
      >"$q.log" 2>&1
    "$QBERT" eval "$q" --data "$DEV" --max-length "$len" --json >"$q.json"
    row "$name" "$label RTN PTQ" "$(metric_of "$q.json" "$metric")" "$fp32" - - -
    row "$name" "$label GPTQ PTQ" "-" "$fp32" - - -
  done
  lim=()
  [ "$limit" -gt 0 ] && lim=(--limit "$limit")
  full=$($PY - "$TRAIN" <<'PYEOF'
import sys
p = sys.argv[1]
if p.endswith(".txt"):  # CoNLL: sentences are blank-line separated, -DOCSTART- lines are not sentences
    n, cur = 0, 0
    for line in open(p):
        if not line.strip():
            n += cur > 0; cur = 0
        elif not line.startswith("-DOCSTART-"):
            cur = 1
    print(n + (cur > 0))
else:
    print(sum(1 for _ in open(p)) - 1)
PYEOF
)
  for bits in 2 ternary; do
    label=$([ $bits = 2 ] && echo "int2-g128" || echo "ternary-g128")
    for kd in none distill; do
      extra=()
      [ $kd = distill ] && extra=(--distill "${HIDDEN[@]}")
      q=$OUT/$name.qat-$bits-$kd
      "$QBERT" qat "$M" --data "$TRAIN" "${lim[@]}" --eval "$DEV" --max-length "$len" --batch 32 \
        --threads "$THREADS" --bits $bits "${extra[@]}" "${LR[@]}" -o "$q" --force >"$q.log" 2>&1
      # qat scores OUT_DIR with qb_evaluate, the code `qbert eval` runs (tests/test_qat_cli.sh checks they agree)
      read -r score steps n_train spe < <($PY - "$q.log" <<'PYEOF'
import re, sys
t = open(sys.argv[1]).read()
b = re.search(r"best epoch \d+: dev (?:accuracy|entity F1) ([\d.]+)", t)
m = re.search(r"trained on (\d+) examples, (\d+) steps", t)
e = re.search(r"time per epoch: ([\d.]+) s training", t)
print(b.group(1), m.group(2), m.group(1), e.group(1))
PYEOF
)
      proj=$($PY -c "print('%.0f' % ($spe * $full / $n_train))")
      what="$label QAT"
      [ $kd = distill ] && what="$label QAT+KD${HIDDEN:+ +hidden}"
      row "$name" "$what" "$score" "$fp32" "$steps" "$spe" "$proj"
    done
  done
done
# other work on the host slows every timing: say how loaded it was
echo "# load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/table.txt"
echo "# rows under $OUT; QAT: batch 32, $( [ ${#LR[@]} -gt 0 ] && echo "lr ${LR[1]}" || echo "lr 1e-4, qat's default at 4 bits and fewer"), 1 epoch" \
  | tee -a "$OUT/table.txt"
