#!/usr/bin/env bash
# Is `qbert compare`'s speed and memory what a user would measure by hand?
#   bench/compare_fairness.sh MODEL_DIR [OUT_DIR] [--rounds N] [--runs N] [--methods LIST]
#                             [--pairs N] [--no-load]
# 1. compare on an idle machine, and again while a busy loop holds one of
#    the two cores: the largest speedup its findings claim must not grow past
#    1.5x the idle run's, and rows the load disturbed must be marked noisy;
# 2. idle speedups against `qbert bench` pairs (fp32 and the method
#    alternated, A B A B, median of per-pair ratios), same shape and threads;
# 3. peak RSS per method against `/usr/bin/time -v qbert bench` of it.
# Prints every figure; nothing is asserted here (the closing note reads it).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
MODEL=${1:?usage: bench/compare_fairness.sh MODEL_DIR [OUT_DIR] [--rounds N] [--runs N] [--methods LIST] [--pairs N] [--no-load]}
shift
OUT=$(mktemp -d)
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then OUT=$1; shift; fi
ROUNDS=5 RUNS=10 PAIRS=7 LOAD=1 METHODS=fp32,fp16,dynamic,dynamic-emb8,static
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --pairs) PAIRS=$2; shift 2 ;;
    --no-load) LOAD=0; shift ;;
    --methods) METHODS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
DEV=$SHARED/data/sst2/dev.tsv CAL=$SHARED/data/sst2/train.tsv
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores"
run_compare() { # run_compare REPORT_DIR
  "$QBERT" compare "$MODEL" --data "$DEV" --calib "$CAL" --calib-n 128 --limit 200 --max-length 66 --seq 128 \
    --methods "$METHODS" --rounds "$ROUNDS" --runs "$RUNS" --threads 2 -o "$1" --force >"$1.out" 2>"$1.err"
}
summary() { # summary REPORT_DIR LABEL
  /usr/bin/python3 - "$1/report.json" "$2" <<'PYEOF'
import json, re, sys
j = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]}:")
for r in j["rows"]:
    print(f"  {r['method']:14s} p50 {r['p50_b1_ms']:8.2f} ms  spread {100 * r['p50_spread']:5.1f}%  "
          f"speedup {r['speedup']:6.2f}  (spread {100 * (r['speedup_spread'] or 0):5.1f}%)  "
          f"noisy {str(r['speed_noisy']):5s}  peak RSS {r['peak_rss_mb']:6.1f} MB")
claims = [float(x) for f in j["findings"] for x in re.findall(r"([0-9.]+)x speedup", f)]
print(f"  largest speedup the findings claim: {max(claims) if claims else 'none'}")
PYEOF
}
run_compare "$OUT/idle"
summary "$OUT/idle" "idle machine"

# A busy loop on CPU 1 for the whole second run.
if [ "$LOAD" = 1 ]; then
  taskset -c 1 sh -c 'while :; do :; done' &
  BUSY=$!
  trap 'kill $BUSY 2>/dev/null || true' EXIT
  run_compare "$OUT/loaded"
  kill $BUSY
  summary "$OUT/loaded" "one core held by a busy loop"
  grep -h "warning" "$OUT/loaded.err" || echo "  (no warning line)"
fi

p50() { # p50 MODEL_DIR: a separate qbert bench's p50 at batch 1, in ms
  "$QBERT" bench "$1" --seq 128 --batch 1 --runs "$RUNS" --threads 2 --json |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["p50_ms"])'
}
echo "bench pairs (idle), seq 128, batch 1, 2 threads, $PAIRS alternations of $RUNS runs:"
IFS=, read -r -a methods <<<"$METHODS"
for m in "${methods[@]}"; do
  [ "$m" = fp32 ] && continue
  dir=$OUT/idle/models/$m
  ratios=()
  for _ in $(seq "$PAIRS"); do
    a=$(p50 "$MODEL")
    b=$(p50 "$dir")
    ratios+=("$(/usr/bin/python3 -c "print($a / $b)")")
  done
  /usr/bin/python3 - "$OUT/idle/report.json" "$m" "${ratios[@]}" <<'PYEOF'
import json, statistics, sys
j = json.load(open(sys.argv[1]))
c = [r for r in j["rows"] if r["method"] == sys.argv[2]][0]["speedup"]
p = statistics.median(float(x) for x in sys.argv[3:])
print(f"  {sys.argv[2]:14s} bench pairs {p:5.2f}x  compare {c:5.2f}x  compare / bench {c / p:5.3f}")
PYEOF
done

echo "peak RSS: compare's row against /usr/bin/time -v qbert bench (seq 128, batch 1,8), 3 runs each, median:"
for m in "${methods[@]}"; do
  dir=$OUT/idle/models/$m
  [ "$m" = fp32 ] && dir=$MODEL
  kb=()
  for _ in 1 2 3; do
    kb+=("$( { /usr/bin/time -v "$QBERT" bench "$dir" --seq 128 --batch 1,8 --runs "$RUNS" --threads 2 >/dev/null; } 2>&1 |
             awk -F: '/Maximum resident set size/ {print $2}')")
  done
  /usr/bin/python3 - "$OUT/idle/report.json" "$m" "${kb[@]}" <<'PYEOF'
import json, statistics, sys
j = json.load(open(sys.argv[1]))
c = [r for r in j["rows"] if r["method"] == sys.argv[2]][0]["peak_rss_mb"]
t = statistics.median(int(x) for x in sys.argv[3:]) * 1024 / 1e6  # KiB to MB, as qbert reports
print(f"  {sys.argv[2]:14s} compare {c:6.1f} MB  time -v {t:6.1f} MB  ratio {c / t:5.3f}")
PYEOF
done
