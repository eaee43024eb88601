#!/usr/bin/env bash
# Speed and memory of low-bit weights against INT8 (issue 15, bar 4), on a
# random-weight bert-base, 2 threads, interleaved rounds (A B C ..., then
# reversed), medians and spread:
#   bench/lowbit_speed.sh [OUT_DIR] [--rounds N] [--isa avx512|avx512-vnni|avx2] [--old QBERT]
# --old runs FP32 and INT8 through another qbert binary as well (the redesign
# must cost nothing) and checks its logits are bit-identical.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
OUT=$(mktemp -d); ROUNDS=5; ISA=; OLD=
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --isa) ISA=$2; shift 2 ;;
    --old) OLD=$2; shift 2 ;;
    *) OUT=$1; shift ;;
  esac
done
mkdir -p "$OUT"
B=$("$HERE/bench/random_model.sh" bert-base)
declare -A ARGS=(
  [int8]="--method dynamic" [int8-emb]="--method dynamic --quantize-embeddings"
  [w4a8]="--method dynamic --bits 4" [w4a8-emb]="--method dynamic --bits 4 --quantize-embeddings"
  [int4-wo]="--method weight-only --bits 4" [kmeans4]="--method weight-only --bits 4 --codebook kmeans"
)
for m in "${!ARGS[@]}"; do
  # shellcheck disable=SC2086
  [ -f "$OUT/$m/config.json" ] || "$QBERT" quantize "$B" -o "$OUT/$m" ${ARGS[$m]} >/dev/null
done
runs=(fp32 int8 w4a8 int4-wo kmeans4 int8-emb w4a8-emb)
[ -n "$OLD" ] && runs+=(old:fp32 old:int8)
dir_of() { case $1 in fp32|old:fp32) echo "$B" ;; old:*) echo "$OUT/${1#old:}" ;; *) echo "$OUT/$1" ;; esac; }
bin_of() { case $1 in old:*) echo "$OLD" ;; *) echo "$QBERT" ;; esac; }
: >"$OUT/samples.tsv"
for r in $(seq "$ROUNDS"); do
  order=("${runs[@]}")
  [ $((r % 2)) -eq 0 ] && order=($(printf '%s\n' "${runs[@]}" | tac))
  for m in "${order[@]}"; do
    # batch 1 and 8 in processes of their own: peak RSS is batch 1's
    for mode in b1 b8 data; do
      case $mode in
        b1) extra=(--seq 128 --batch 1 --runs 10) ;;
        b8) extra=(--seq 128 --batch 8 --runs 10) ;;
        data) extra=(--data "$SHARED/data/sst2/dev.tsv" --limit 200 --batch 1) ;;
      esac
      QBERT_ISA=$ISA "$(bin_of "$m")" bench "$(dir_of "$m")" --threads 2 "${extra[@]}" --json |
        /usr/bin/python3 -c "
import json, sys
for l in sys.stdin:
    j = json.loads(l)
    b = 'sst2' if j['mode'] != 'synthetic' else 'b%d' % j['batch']
    v = j['sentences_per_s'] if b == 'sst2' else j['p50_ms']
    print('$m', b, v, j['peak_rss_mb'], sep='\t')" >>"$OUT/samples.tsv"
    done
  done
done
/usr/bin/python3 - "$OUT/samples.tsv" <<'PYEOF'
import statistics as st, sys, collections
s = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m, b, v, rss = line.split("\t"); s[(m, b)].append((float(v), float(rss)))
def med(m, b, i=0): return st.median(x[i] for x in s[(m, b)])
def spread(m, b):
    v = sorted(x[0] for x in s[(m, b)]); q = st.quantiles(v, n=4) if len(v) > 1 else [v[0]] * 3
    return 100 * (q[2] - q[0]) / st.median(v)
print("%-10s %10s %7s %10s %7s %12s %7s %8s %9s %9s" % ("method", "b1 ms", "spr%", "b8 ms", "spr%", "sst2 sent/s", "spr%",
      "RSS MB", "b1/int8", "b8/int8"))
for m in dict.fromkeys(k[0] for k in s):
    ref = "int8-emb" if m.endswith("-emb") else "int8"
    print("%-10s %10.2f %7.1f %10.2f %7.1f %12.1f %7.1f %8.1f %9.3f %9.3f" % (m, med(m, "b1"), spread(m, "b1"),
          med(m, "b8"), spread(m, "b8"), med(m, "sst2"), spread(m, "sst2"), med(m, "b1", 1),
          med(m, "b1") / med(ref, "b1"), med(m, "b8") / med(ref, "b8")))
print("RSS w4a8/int8 %.3f; with embeddings at the weights' bits %.3f" % (med("w4a8", "b1", 1) / med("int8", "b1", 1),
      med("w4a8-emb", "b1", 1) / med("int8-emb", "b1", 1)))
print("sst2 sentences/s w4a8/int8 %.3f" % (med("w4a8", "sst2") / med("int8", "sst2")))
if ("old:int8", "b1") in s:
    for m in ("fp32", "int8"):
        print("%s new/old b1 %.3f b8 %.3f" % (m, med(m, "b1") / med("old:" + m, "b1"), med(m, "b8") / med("old:" + m, "b8")))
PYEOF
# The figures above come from processes a minute apart, which a shared
# host's memory traffic can move by a third; the same calls through both
# models in one process, a few at a time in turn, are steadier.
PAIR=${BENCH_PAIR:-$HERE/build/bench_pair}
echo "both models in one process, interleaved (bench_pair):"
QBERT_ISA=$ISA "$PAIR" --data "$SHARED/data/sst2/dev.tsv" --limit 200 --rounds "$ROUNDS" "$OUT/int8" "$OUT/w4a8"
QBERT_ISA=$ISA "$PAIR" --shape 128x1 --runs 6 --chunk 2 --rounds "$ROUNDS" "$OUT/int8" "$OUT/w4a8"
QBERT_ISA=$ISA "$PAIR" --shape 128x8 --runs 4 --chunk 1 --rounds "$ROUNDS" "$OUT/int8" "$OUT/w4a8"
if [ -n "$OLD" ]; then
  for m in fp32 int8; do
    a=$("$QBERT" predict "$(dir_of $m)" "a gorgeous, witty, seductive movie." "dull" --json)
    b=$("$OLD" predict "$(dir_of $m)" "a gorgeous, witty, seductive movie." "dull" --json)
    [ "$a" = "$b" ] && echo "$m: logits bit-identical to the old binary" || echo "$m: logits DIFFER from the old binary"
  done
fi
