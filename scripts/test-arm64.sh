#!/usr/bin/env bash
# The AArch64 build's suites under qemu-aarch64, once per CPU level:
#   cortex-a53 (ARMv8.0: neon), cortex-a76 (ARMv8.2: dotprod), max (i8mm, bf16),
# each with QBERT_ISA at that level (the kernel suites then check that set
# against scalar).  First each level must be the one qbert picks by itself
# from HWCAP.  Every level runs even when one fails; the exit status is
# non-zero if any failed.
#   scripts/test-arm64.sh BUILD_DIR [quick]
# quick (CI): the kernel suites, the WordPiece/SentencePiece tokenizer
# goldens and one trained model's golden logits; otherwise the kernel and
# tokenizer suites and the golden logits of the four trained models, and
# all of it once more on the scalar kernels.  At each level a bert-mini
# INT8 predict of one sentence must peak below 40 MB RSS, qemu included
# (issue 21's small boards).  The suites check no timing, so they run two
# at a time: qemu emulates one guest thread per host thread.
set -uo pipefail
build=${1:?usage: scripts/test-arm64.sh BUILD_DIR [quick]}
mode=${2:-full}
cd "$(dirname "$0")/.."
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu CI=${CI:-}
suites='test_kernels|test_kernels_i8|test_kernels_h16|test_kernels_lowbit|test_tokenizer|test_tokenizer_json|test_golden'
export QB_GOLDEN_MODELS=bert-mini-sst2,bert-mini-imdb,bert-mini-conll,albert-mini-sst2
if [ "$mode" = quick ]; then
  suites='test_kernels|test_kernels_i8|test_kernels_h16|test_kernels_lowbit|test_tokenizer|test_golden'
  export QB_GOLDEN_MODELS=bert-mini-sst2 QB_SANITIZE=1 # the sanitizer runs' smaller low-bit shapes
fi

levels='cortex-a53:neon cortex-a76:dotprod max:i8mm'
[ "$mode" = quick ] || levels="$levels cortex-a53:scalar"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# what the board needs: libc alone (utf8proc, jansson, protobuf-c linked in)
needed=$(aarch64-linux-gnu-readelf -d "$build/qbert" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
[ "$needed" = "ld-linux-aarch64.so.1 libc.so.6 libm.so.6 " ] ||
  { echo "FAIL: $build/qbert needs more than libc: $needed" >&2; exit 1; }
echo "== $build/qbert needs: $needed"
QEMU_CPU=cortex-a53 qemu-aarch64 "$build/qbert" quantize models/bert-mini-sst2 -o "$tmp/int8" --method dynamic >/dev/null ||
  { echo "FAIL: quantize under qemu" >&2; exit 1; }

# small_board CPU: the peak RSS (KiB) of one sentence's INT8 predict.
small_board() {
  QEMU_CPU=$1 /usr/bin/time -f %M -o "$tmp/rss" qemu-aarch64 "$build/qbert" predict "$tmp/int8" \
    "a gripping, funny and moving film" >/dev/null && cat "$tmp/rss"
}

failed=()
for level in $levels; do
  cpu=${level%%:*} isa=${level#*:}
  start=$SECONDS
  picked=$(QEMU_CPU=$cpu qemu-aarch64 "$build/qbert" info models/bert-mini-sst2 --json 2>&1 |
           sed -n 's/.*"isa": *"\([a-z0-9]*\)".*/\1/p')
  if [ "$isa" != scalar ] && [ "$picked" != "$isa" ]; then
    echo "FAIL $cpu: qbert picked '$picked' from HWCAP, expected $isa" >&2
    failed+=("$cpu")
    continue
  fi
  echo "== $cpu: QBERT_ISA=$isa (HWCAP picks $picked)"
  rss=$(QBERT_ISA=$isa small_board "$cpu")
  echo "== $cpu/$isa: bert-mini INT8 predict of one sentence peaks at ${rss:-?} KiB (qemu included; bar 39062)"
  [ -n "$rss" ] && [ "$rss" -lt 39062 ] || failed+=("$cpu/$isa small board")
  if ! QEMU_CPU=$cpu QBERT_ISA=$isa ctest --test-dir "$build" -R "^($suites)\$" --output-on-failure -j 2; then
    failed+=("$cpu/$isa")
  fi
  echo "== $cpu/$isa: $((SECONDS - start)) s"
done
[ ${#failed[@]} -eq 0 ] || { echo "test-arm64 failed on: ${failed[*]}" >&2; exit 1; }
echo "test-arm64: every level passed"
