#!/usr/bin/env bash
# Latency of two qbert binaries on the same models, interleaved round by
# round (A B, then B A), so background load falls on both alike: the check
# that a change leaves speed alone.  Prints per configuration the medians,
# their ratio B/A and the spread of the per-round ratios.
#   bench/ab_speed.sh OLD_QBERT NEW_QBERT [--rounds N] [--runs N] [--out DIR]
# Models: random-weight bert-base (FP32, INT8 dynamic, INT8 dynamic
# --reduce-range and W4A8 dynamic, seq 128, batch 1 and 8) and the trained
# bert-mini-sst2 INT8; 2 threads.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
[ $# -ge 2 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A=$1 B=$2; shift 2
ROUNDS=5 RUNS=10 OUT=$(mktemp -d)
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "ab_speed.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
BASE=$("$HERE/bench/random_model.sh" bert-base)
# Each binary quantizes with itself: what it writes is part of what it runs.
for v in A B; do
  [ -f "$OUT/base-int8-$v/config.json" ] || "${!v}" quantize "$BASE" -o "$OUT/base-int8-$v" --method dynamic >/dev/null
  [ -f "$OUT/base-w4a8-$v/config.json" ] ||
    "${!v}" quantize "$BASE" -o "$OUT/base-w4a8-$v" --method dynamic --bits 4 >/dev/null
  [ -f "$OUT/base-int8rr-$v/config.json" ] ||
    "${!v}" quantize "$BASE" -o "$OUT/base-int8rr-$v" --method dynamic --reduce-range >/dev/null
  [ -f "$OUT/mini-int8-$v/config.json" ] || "${!v}" quantize "$SHARED/models/bert-mini-sst2" -o "$OUT/mini-int8-$v" --method dynamic >/dev/null
done
configs=("base-fp32" "base-int8" "base-int8rr" "base-w4a8" "mini-int8")
dir_of() { case $1 in base-fp32) echo "$BASE" ;; *) echo "$OUT/$1-$2" ;; esac; }
: >"$OUT/samples.tsv"
for r in $(seq "$ROUNDS"); do
  order=(A B); [ $((r % 2)) -eq 0 ] && order=(B A)
  for c in "${configs[@]}"; do
    for v in "${order[@]}"; do
      "${!v}" bench "$(dir_of "$c" "$v")" --batch 1,8 --threads 2 --runs "$RUNS" --json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    o = json.loads(l); print(sys.argv[1], sys.argv[2], sys.argv[3], o["batch"], o["p50_ms"], sep="\t")' "$r" "$c" "$v" \
        >>"$OUT/samples.tsv"
    done
  done
  echo "round $r of $ROUNDS done" >&2
done
python3 - "$OUT/samples.tsv" <<'EOF'
import statistics as st, sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
per = {}
for r, c, v, b, ms in rows:
    per.setdefault((c, int(b)), {}).setdefault(int(r), {})[v] = float(ms)
print(f"{'config':10} {'batch':>5} {'A p50 ms':>9} {'B p50 ms':>9} {'B/A':>6} {'ratio min..max':>15}")
for (c, b), rounds in sorted(per.items()):
    full = [x for x in rounds.values() if "A" in x and "B" in x]
    a = st.median(x["A"] for x in full); bb = st.median(x["B"] for x in full)
    ratios = [x["B"] / x["A"] for x in full]
    print(f"{c:10} {b:5d} {a:9.2f} {bb:9.2f} {bb / a:6.3f} {min(ratios):7.3f}..{max(ratios):.3f}")
EOF
echo "samples: $OUT/samples.tsv; CPU: $(lscpu | sed -n 's/^Model name: *//p')"
