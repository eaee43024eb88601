#!/usr/bin/env bash
# The Python binding (python/qbert) against the CLI: tests/python/test_qbert.py
# with Debian's python3 and numpy, on the library this build made; and its
# ctypes structs against qbert.h's (tests/python/test_layout.py).
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
check "ctypes mirrors of qbert.h's structs (tests/python/test_layout.py)" \
  $PY "$SRC/tests/python/test_layout.py" "$SRC/include" "$TMP"
check "binding tests (tests/python/test_qbert.py)" $PY "$SRC/tests/python/test_qbert.py"

# pip install ./python, offline, into a virtual environment over Debian's
# numpy: the wheel bundles this build's library.
if $PY -m venv --system-site-packages "$TMP/venv" >/dev/null 2>&1 && [ -x "$TMP/venv/bin/pip" ]; then
  check "pip install ./python offline" "$TMP/venv/bin/pip" install -q --no-index "$SRC/python"
  got=$(cd "$TMP" && env -u PYTHONPATH -u QBERT_LIB M="$SRC/models/bert-mini-sst2" "$TMP/venv/bin/python" -c \
    'import qbert, os; m = qbert.Model(os.environ["M"]); print(m.predict("great film").labels[0], os.path.basename(qbert._lib.lib._name))' 2>&1)
  check "installed package predicts with its bundled library ($got)" test "$got" = "positive libqbert.so"
else
  echo "note: no python3 venv/pip here; pip install ./python not checked"
fi
finish
