#!/usr/bin/env bash
# python3 -m qbert.dask_score on a LocalCluster (2 workers): output equal
# to qbert predict's, a killed worker, resuming (tests/python/test_dask.py).
set -u
. "$(dirname "$0")/lib.sh"
need_shared data/imdb/test-2000.tsv
if [ -n "$SANITIZE" ]; then echo "skipped: the sanitizers' library cannot load into python3"; exit 77; fi
if ! $PY -c 'import numpy, dask.distributed' 2>/dev/null; then
  [ "${CI:-}" = "true" ] && { echo "FAILED: $PY with numpy and dask.distributed is required (install-deps.sh --test)" >&2; exit 1; }
  echo "skipped: $PY with numpy and dask.distributed not found"
  exit 77
fi
# 160 IMDB reviews: long enough that a worker dies mid-run.
head -161 "$SHARED/data/imdb/test-2000.tsv" >"$TMP/imdb.tsv"
export QBERT_LIB=${QB_BUILD_DIR:-$SRC/build}/libqbert.so PYTHONPATH=$SRC/python
check "dask scoring (tests/python/test_dask.py)" $PY "$SRC/tests/python/test_dask.py" "$SRC/models/bert-mini-sst2" \
  "$TMP/imdb.tsv" "$TMP" "$SHARED/models/bert-mini-conll" "$SHARED/data/conll2003/test.txt"
finish
