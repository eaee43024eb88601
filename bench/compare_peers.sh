#!/usr/bin/env bash
# Side by side with ONNX Runtime (and optionally PyTorch), interleaved round
# by round (A B A B ...) so background load hits every system alike.
#
#   bench/compare_peers.sh QBERT_FP32_DIR [QBERT_INT8_DIR] [--int8-rr DIR] [--rounds N] [--torch]
# --int8-rr adds a qbert INT8 model quantized with --reduce-range (7-bit
# weights, which AVX2 multiplies with vpmaddubsw as ORT's INT8 kernels do,
# but exactly) beside ORT's INT8.
#
# Needs ../shared/peers prepared (bash ../shared/peers/prepare.sh): its
# random bert-base-uncased checkpoint and ONNX files under $PEERS_WORK.
# Prints one line per system with the median of the per-round medians for
# batch 1 and 8 at seq 128, 2 threads, and the ratios to ORT.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
WORK=${PEERS_WORK:-$HOME/.cache/qbert-peers}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
PEER_MODEL=${PEER_MODEL:-bert-base-uncased-random}
fp32=$1; shift
int8=""; int8rr=""; rounds=3; torch=0
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --torch) torch=1; shift ;;
    --int8-rr) int8rr=$2; shift 2 ;;
    *) int8=$1; shift ;;
  esac
done
out=$(mktemp -d)
V=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$fp32/config.json")
export NODE_PATH=$WORK/node_modules OMP_NUM_THREADS=2

run() { # run SYSTEM ROUND
  case $1 in
    qbert-*) dir=$fp32; [ "$1" = qbert-int8 ] && dir=$int8; [ "$1" = qbert-int8rr ] && dir=$int8rr
             "$QBERT" bench "$dir" --seq 128 --batch 1,8 --threads 2 --runs 10 --warmup 2 --json >"$out/$1.$2.json" ;;
    ort-*) node "$SHARED/peers/bench_ort.mjs" --model "$WORK/onnx/$PEER_MODEL.${1#ort-}.onnx" --vocab "$V" \
             --batches 1,8 --seq 128 --warmup 2 --iters 10 --threads 2 --max-time 60 --out "$out/$1.$2.json" >/dev/null ;;
    torch-*) /usr/bin/python3 "$SHARED/peers/bench_torch.py" --ckpt "$WORK/ckpt/$PEER_MODEL" --precision "${1#torch-}" \
             --batches 1,8 --seq 128 --warmup 2 --iters 10 --threads 2 --max-time 60 --out "$out/$1.$2.json" >/dev/null 2>&1 ;;
  esac
}

systems=(qbert-fp32 ort-fp32)
[ -n "$int8" ] && systems+=(qbert-int8 ort-int8)
[ -n "$int8rr" ] && systems+=(qbert-int8rr)
[ $torch -eq 1 ] && systems+=(torch-fp32 torch-int8)
for r in $(seq 1 "$rounds"); do
  order=("${systems[@]}")
  [ $((r % 2)) -eq 0 ] && order=($(printf '%s\n' "${systems[@]}" | tac))
  for s in "${order[@]}"; do run "$s" "$r"; echo "round $r: $s done" >&2; done
done

/usr/bin/python3 - "$out" "${systems[@]}" <<'PYEOF'
import glob, json, os, statistics, sys
out, systems = sys.argv[1], sys.argv[2:]
def medians(system, batch):
    vals = []
    for f in sorted(glob.glob(os.path.join(out, system + ".*.json"))):
        text = open(f).read().strip().splitlines()
        if system.startswith("qbert"):
            for line in text:
                j = json.loads(line)
                if j["batch"] == batch: vals.append(j["p50_ms"])
        else:
            j = json.loads("\n".join(text))
            vals.append(j["latency"]["b%d" % batch]["median_ms"])
    return vals
rows = {s: {b: medians(s, b) for b in (1, 8)} for s in systems}
print("%-11s %28s %28s" % ("system", "batch 1 ms (rounds)", "batch 8 ms (rounds)"))
for s in systems:
    cells = []
    for b in (1, 8):
        v = rows[s][b]
        cells.append("%7.1f [%s]" % (statistics.median(v), " ".join("%.0f" % x for x in v)))
    print("%-11s %28s %28s" % (s, cells[0], cells[1]))
for q, o in (("qbert-fp32", "ort-fp32"), ("qbert-int8", "ort-int8"), ("qbert-int8rr", "ort-int8")):
    if q in rows and o in rows:
        print("%s/%s: batch 1 %.2fx, batch 8 %.2fx" % (q, o,
              statistics.median(rows[q][1]) / statistics.median(rows[o][1]),
              statistics.median(rows[q][8]) / statistics.median(rows[o][8])))
if "qbert-int8" in rows:
    print("qbert int8 speedup over qbert fp32: batch 1 %.2fx, batch 8 %.2fx" % (
          statistics.median(rows["qbert-fp32"][1]) / statistics.median(rows["qbert-int8"][1]),
          statistics.median(rows["qbert-fp32"][8]) / statistics.median(rows["qbert-int8"][8])))
PYEOF
rm -rf "$out"
