#!/usr/bin/env bash
# A random-weight checkpoint of the benchmarks' cache, made as
# tests/test_golden.c makes it and in the same folder, so that the two share
# it: the golden ids of bert-base and distilbert-base come from
# bert-mini-sst2's vocabulary, the other presets bring their own.
#   bench/random_model.sh PRESET [DIR]
# DIR defaults to $QB_RANDOM_MODELS/PRESET, else
# ${XDG_CACHE_HOME:-~/.cache}/qbert/random-models/PRESET; nothing is made
# where DIR has a model.  Prints DIR.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${QB_SHARED_DIR:-$HERE/../shared}
[ $# -eq 1 ] || [ $# -eq 2 ] || { echo "usage: bench/random_model.sh PRESET [DIR]" >&2; exit 2; }
dir=${2:-${QB_RANDOM_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/qbert/random-models}/$1}
if [ ! -f "$dir/model.safetensors" ]; then
  extra=()
  case $1 in bert-base|distilbert-base) extra=(--vocab "$SHARED/models/bert-mini-sst2/vocab.txt") ;; esac
  /usr/bin/python3 "$SHARED/tools/make_random_checkpoint.py" "$1" "$dir" --seed 0 "${extra[@]}" >/dev/null
fi
echo "$dir"
