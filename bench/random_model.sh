#!/usr/bin/env bash
# A random-weight checkpoint of the benchmarks' cache, made as
# tests/test_golden.c makes it, so that the two can share the cache: the
# golden ids of bert-base and distilbert-base come from bert-mini-sst2's
# vocabulary, the other presets bring their own.
#   bench/random_model.sh PRESET DIR   (nothing to do where DIR has a model)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
[ $# -eq 2 ] || { echo "usage: bench/random_model.sh PRESET DIR" >&2; exit 2; }
[ -f "$2/model.safetensors" ] && exit 0
extra=()
case $1 in bert-base|distilbert-base) extra=(--vocab "$SHARED/models/bert-mini-sst2/vocab.txt") ;; esac
exec /usr/bin/python3 "$SHARED/tools/make_random_checkpoint.py" "$1" "$2" --seed 0 "${extra[@]}" >/dev/null
