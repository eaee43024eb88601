#!/usr/bin/env bash
# The Python binding (python/qbert) against the CLI: tests/python/test_qbert.py
# with Debian's python3 and numpy, on the library this build made.
set -u
. "$(dirname "$0")/lib.sh"
need_shared data/sst2/dev.tsv
if [ -n "$SANITIZE" ]; then echo "skipped: the sanitizers' library cannot load into python3"; exit 77; fi
if ! $PY -c 'import numpy' 2>/dev/null; then
  [ "${CI:-}" = "true" ] && { echo "FAILED: $PY with numpy is required (scripts/install-deps.sh --test)" >&2; exit 1; }
  echo "skipped: $PY with numpy not found"
  exit 77
fi
export QBERT_LIB=${QB_BUILD_DIR:-$SRC/build}/libqbert.so PYTHONPATH=$SRC/python TMPDIR_QB=$TMP
check "binding tests (tests/python/test_qbert.py)" $PY "$SRC/tests/python/test_qbert.py"
finish
