#!/usr/bin/env bash
# Sizes of the low-bit formats (issue 15, bar 2): model.safetensors over the
# FP32 file on random-weight bert-base and albert-base-v2 from
# ../shared/tools, embeddings at the same bits as the linears:
#   bench/lowbit_size.sh [OUT_DIR]
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
QBERT=${QBERT_BIN:-$HERE/build/qbert}
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
declare -A dir
for arch in bert-base albert-base-v2; do dir[$arch]=$("$HERE/bench/random_model.sh" "$arch"); done
cases=(
  "bert-base|int4 g128|--method dynamic --bits 4 --quantize-embeddings|14"
  "bert-base|int2 g128|--method dynamic --bits 2 --quantize-embeddings|7.5"
  "bert-base|ternary|--method dynamic --bits ternary --quantize-embeddings|6.25"
  "bert-base|kmeans4 per row|--method weight-only --bits 4 --codebook kmeans --quantize-embeddings|15"
  "albert-base-v2|int4 g128|--method dynamic --bits 4 --quantize-embeddings|15"
)
printf '%-15s %-16s %12s %12s %8s %6s\n' model format fp32_bytes bytes percent bar
for c in "${cases[@]}"; do
  IFS='|' read -r arch name args bar <<<"$c"
  q=$OUT/$arch.${name%% *}
  # shellcheck disable=SC2086
  "$QBERT" quantize "${dir[$arch]}" -o "$q" --force $args >"$q.log" 2>&1
  a=$(stat -c %s "${dir[$arch]}/model.safetensors")
  b=$(stat -c %s "$q/model.safetensors")
  pct=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", 100 * b / a }')
  ok=$(awk -v p="$pct" -v bar="$bar" 'BEGIN { print (p <= bar) ? "ok" : "OVER" }')
  printf '%-15s %-16s %12d %12d %7s%% %5s%% %s\n' "$arch" "$name" "$a" "$b" "$pct" "$bar" "$ok"
done
