#!/usr/bin/env bash
# Training speed side by side with PyTorch (issue 5, bar 4: qbert >= 0.8x
# PyTorch's examples/s, bert-mini on SST-2, batch 32, 2 threads).
#
#   bench/compare_train.sh MODEL_DIR [--rounds 3] [--threads 2] [--limit 2048]
#                          [--data TSV] [--batch 32] [--max-length 66]
#
# qbert's first round writes its padded batches (bench_train --dump);
# bench/train_torch.py trains Debian's python3-torch (../shared/tools/bert_ref.py)
# on that same dump.  Rounds interleave (qbert, PyTorch, qbert, PyTorch ...)
# so background load hits both alike; the machine load is printed at the
# start and the end, since a shared 2-core machine makes any figure noisy.
# Both sides cap their thread pools at --threads (OMP_NUM_THREADS and
# OPENBLAS_NUM_THREADS for PyTorch's BLAS).
#
# Needs build/bench_train (or $BENCH_TRAIN): cmake --build build --target bench_train.
# Exits 77 without measuring anything when python3-torch is missing
# ($QB_PYTHON, default /usr/bin/python3, cannot import torch and numpy).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
BENCH=${BENCH_TRAIN:-$HERE/build/bench_train}
PY=${QB_PYTHON:-/usr/bin/python3}  # the one with Debian's python3-torch

usage="usage: $0 MODEL_DIR [--rounds N] [--threads N] [--limit N] [--data TSV] [--batch B] [--max-length L]"
[ $# -ge 1 ] && [ "${1#-}" = "$1" ] || { echo "$usage" >&2; exit 2; }
model=$1; shift
rounds=3; threads=2; limit=2048; batch=32; max_length=66; data=$SHARED/data/sst2/train.tsv
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 2; }
  case $1 in
    --rounds) rounds=$2 ;;
    --threads) threads=$2 ;;
    --limit) limit=$2 ;;
    --data) data=$2 ;;
    --batch) batch=$2 ;;
    --max-length) max_length=$2 ;;
    *) echo "$0: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done

if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "SKIP: $PY cannot import torch and numpy (Debian: apt-get install python3-torch python3-numpy);" \
       "no comparison was run." >&2
  exit 77
fi
[ -x "$BENCH" ] || { echo "$0: $BENCH not built (cmake --build build --target bench_train)" >&2; exit 1; }
[ -d "$model" ] || { echo "$0: $model: no such model directory" >&2; exit 1; }
[ -f "$data" ] || { echo "$0: $data: no such data file" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rate() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["examples_per_s"])' "$1"; }
common=(--threads "$threads" --steps-warmup 3)
echo "load at start: $(uptime)"
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || echo unknown)
echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), BLAS $blas"
for r in $(seq 1 "$rounds"); do
  dump=()
  [ "$r" -eq 1 ] && dump=(--dump "$out/batches.bin")
  "$BENCH" "$model" --data "$data" --limit "$limit" --batch "$batch" --max-length "$max_length" "${common[@]}" \
    "${dump[@]}" --json >"$out/qbert.$r.json"
  echo "round $r: qbert $(rate "$out/qbert.$r.json") ex/s" >&2
  OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads QB_SHARED_DIR=$SHARED \
    "$PY" "$HERE/bench/train_torch.py" "$model" "$out/batches.bin" "${common[@]}" --json >"$out/torch.$r.json"
  echo "round $r: pytorch $(rate "$out/torch.$r.json") ex/s" >&2
done
echo "load at end:   $(uptime)"

"$PY" - "$out" "$rounds" <<'PYEOF'
import json, os, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
load = lambda side, r: json.load(open(os.path.join(out, "%s.%d.json" % (side, r))))
q = [load("qbert", r) for r in range(1, rounds + 1)]
t = [load("torch", r) for r in range(1, rounds + 1)]
a, b = q[0], t[0]
print("work: %d batches, %d examples, mean padded length qbert %.4f / pytorch %.4f, batch %d, %d threads"
      % (a["batches"], a["examples"], a["mean_padded_len"], b["mean_padded_len"], a["batch"], a["threads"]))
same = (a["batches"], a["examples"], a["real_tokens"]) == (b["batches"], b["examples"], b["real_tokens"]) \
    and abs(a["mean_padded_len"] - b["mean_padded_len"]) < 1e-3
if not same:
    print("WARNING: the two sides did not train on the same batches; the comparison is void")
diff = abs(a["eval_loss0"] - b["eval_loss0"])
print("loss of batch 0, dropout off: qbert %.8f, pytorch %.8f, |diff| %.1e%s"
      % (a["eval_loss0"], b["eval_loss0"], diff, "" if diff <= 1e-4 else "  WARNING: > 1e-4, not the same model"))
print("mean training loss (dropout on, first round): qbert %.4f, pytorch %.4f"
      % (a["mean_train_loss"], b["mean_train_loss"]))
print()
print("%-7s %14s %14s %8s %16s %16s"
      % ("round", "qbert ex/s", "pytorch ex/s", "ratio", "qbert ms/step", "pytorch ms/step"))
for r in range(rounds):
    print("%-7d %14.2f %14.2f %8.3f %16.1f %16.1f" % (r + 1, q[r]["examples_per_s"], t[r]["examples_per_s"],
          q[r]["examples_per_s"] / t[r]["examples_per_s"], q[r]["ms_step_median"], t[r]["ms_step_median"]))
mq = statistics.median(x["examples_per_s"] for x in q)
mt = statistics.median(x["examples_per_s"] for x in t)
print("%-7s %14.2f %14.2f %8.3f %16.1f %16.1f" % ("median", mq, mt, mq / mt,
      statistics.median(x["ms_step_median"] for x in q), statistics.median(x["ms_step_median"] for x in t)))
print()
print("qbert/PyTorch = %.3f  (bar: >= 0.8: %s)" % (mq / mt, "met" if mq / mt >= 0.8 else "NOT met"))
PYEOF
