#!/usr/bin/env bash
# `qbert info --max-batch B --max-length L` predicts what running the model
# with that session takes; a bench run of exactly that session must peak
# within 10% of it, above the process's own baseline (below; docs/arm64.md,
# "Small boards").  RSS means nothing under the sanitizers' shadow memory.
set -u
. "$(dirname "$0")/lib.sh"
need_shared models/bert-mini-sst2
M=$SHARED/models/bert-mini-sst2
if [ -n "$SANITIZE" ]; then echo "skipped: peak RSS under the sanitizers"; exit 77; fi
TIME=/usr/bin/time
if [ ! -x "$TIME" ]; then
  if [ "${CI:-}" = "true" ]; then echo "FAILED: $TIME not found (scripts/install-deps.sh --test)" >&2; exit 1; fi
  echo "skipped: $TIME not found (scripts/install-deps.sh --test)"; exit 77
fi

TINY=$SRC/tests/data/tiny-bert-seq
"$QBERT" quantize "$M" -o "$TMP/int8" --method dynamic >/dev/null || fail "quantize int8"
"$QBERT" quantize "$TINY" -o "$TMP/tiny-int8" --method dynamic >/dev/null || fail "quantize tiny int8"

# peak RSS in bytes of a command (GNU time's %M, KiB): the same measure
# for the baseline and the workload
peak() { "$TIME" -f %M -o "$TMP/rss" "$@" >/dev/null 2>"$TMP/err" && echo $(($(tail -1 "$TMP/rss") * 1024)); }
predict() { # predict MODEL BATCH LENGTH: memory_bytes of info
  "$QBERT" info "$1" --max-batch "$2" --max-length "$3" --threads 1 --json >"$TMP/info.json" &&
    json_get "$TMP/info.json" 'j["memory_bytes"]'
}
# The process's own baseline: the same bench on a model of a few KB of
# weights (median of three), less that model's predicted memory.  It holds
# what a run touches besides the model: code (the loader, the tokenizer, the
# kernels of the model's format), libc, thread stacks.  `qbert --version`
# would miss the code pages a run touches, a few percent of a small model.
baseline() { # baseline TINY_MODEL
  local p; p=$(predict "$1" 1 16) || return 1
  echo $(( $( (for i in 1 2 3; do peak "$QBERT" bench "$1" --batch 1 --seq 16 --threads 1 --runs 3; done) |
              sort -n | sed -n 2p) - p ))
}

for pair in "$M $TINY" "$TMP/int8 $TMP/tiny-int8"; do
  set -- $pair
  model=$1
  base=$(baseline "$2")
  check "$(basename "$model"): baseline measured" test "${base:-0}" -gt 0
  for shape in "1 128" "32 128"; do
    set -- $shape
    what="$(basename "$model") batch $1 length $2"
    predicted=$(predict "$model" "$1" "$2") || { fail "$what: info"; continue; }
    check "$what: memory_bytes adds up" test "$(json_get "$TMP/info.json" \
      'j["memory_bytes"] == j["weights_held_bytes"] + j["weights_mapped_bytes"] + j["embeddings_bytes"] + j["tokenizer_bytes"] + j["session_bytes"]')" = True
    # bench's session is exactly max_batch x max_seq = B x L, every row full
    used=$(peak "$QBERT" bench "$model" --batch "$1" --seq "$2" --threads 1 --runs 3) || { fail "$what: bench"; continue; }
    used=$((used - base))
    ratio=$($PY -c "print(f'{$predicted / $used:.3f}')")
    echo "$what: predicted $predicted, used $used (peak $((used + base)) - baseline $base), ratio $ratio"
    check "$what: predicted within 10% of used ($ratio)" $PY -c "import sys; sys.exit(not 0.9 <= $ratio <= 1.1)"
  done
done
finish
