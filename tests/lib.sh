# Helpers for the shell tests: counters, the closing line, ../shared checks.
QBERT=${QBERT_BIN:?QBERT_BIN must name the qbert binary}
SRC=${QB_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
SHARED=${QB_SHARED_DIR:-$SRC/../shared}
PY=/usr/bin/python3
# Under the sanitizers (make test-sanitize) the model runs ~20x slower: long
# evaluations use a prefix of the data and check that they run cleanly; the
# accuracy bars themselves are checked by the optimized build.
SANITIZE=${QB_SANITIZE:-}
passed=0
failed=0
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# finite-check stamps (qbert --help) stay inside the test
export QBERT_CACHE_DIR=$TMP/cache

ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then ok; else fail "$what"; fi
}
finish() {
  echo "$(basename "$0" .sh): $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
need_shared() { # need_shared PATH_IN_SHARED
  [ -e "$SHARED/$1" ] && return 0
  if [ "${CI:-}" = "true" ]; then echo "FAILED: ../shared/$1 not found (CI=true requires it)" >&2; exit 1; fi
  echo "skipped: ../shared not found ($1)"
  exit 77
}
# expect_error NAME PATTERN COMMAND...: exit 1, one stderr line matching
# PATTERN (the malformed-input corpus: tests/test_bad_*.sh).
expect_error() {
  local name=$1 pattern=$2; shift 2
  timeout 60 "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  local lines; lines=$(grep -c . "$TMP/err")
  if [ $rc -ne 1 ] || [ "$lines" -ne 1 ] || ! grep -qE "$pattern" "$TMP/err"; then
    fail "$name: rc=$rc, stderr ($lines lines): $(head -c 400 "$TMP/err")"
  else
    ok
  fi
}
# json_get FILE EXPR: evaluates a Python expression over the parsed JSON `j`.
json_get() { $PY -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }
# rewrite_header SRC DST PYTHON: copies safetensors SRC to DST with its JSON
# header rewritten by PYTHON statements over the dict `h` (no re-padding, so
# data offsets may become unaligned: readers must cope).
# retile SRC DST PYTHON: like rewrite_header, but the data follows: tensors
# PYTHON deletes lose their bytes, one it shortens ("data_offsets"[1] -= k)
# keeps its first bytes, and the rest are laid end to end again, so the file
# still tiles its data section and only the intended fault remains.
retile() {
  $PY - "$1" "$2" "$3" <<'PYEOF'
import json, struct, sys
src, dst, code = sys.argv[1:4]
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n]); body = data[8 + n:]
begin = {k: v["data_offsets"][0] for k, v in h.items() if k != "__metadata__"}
exec(code)
out = bytearray()
for k in sorted((k for k in h if k != "__metadata__"), key=lambda k: begin[k]):
    b, e = h[k]["data_offsets"]
    h[k]["data_offsets"] = [len(out), len(out) + e - b]
    out += body[begin[k]:begin[k] + e - b]
hb = json.dumps(h).encode(); hb += b" " * (-len(hb) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + out)
PYEOF
}
# bare_encoder SRC DST POOLING_JSON: SRC's encoder without its classifier
# (left in, its tensors would be named in a warning, as Hugging Face names
# them), in sentence-transformers' layout: Transformer, Pooling, Normalize.
bare_encoder() {
  mkdir -p "$2/1_Pooling" "$2/2_Normalize"
  retile "$1/model.safetensors" "$2/model.safetensors" "del h['classifier.weight'], h['classifier.bias']"
  cp "$1/vocab.txt" "$1/tokenizer_config.json" "$2/"
  $PY -c "import json,sys; c=json.load(open(sys.argv[1])); c['architectures']=['BertModel']; json.dump(c, open(sys.argv[2],'w'))" \
    "$1/config.json" "$2/config.json"
  cat >"$2/modules.json" <<'EOF'
[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
 {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
 {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
EOF
  echo "$3" >"$2/1_Pooling/config.json"
}
rewrite_header() {
  $PY - "$1" "$2" "$3" <<'PYEOF'
import json, struct, sys
src, dst, code = sys.argv[1:4]
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n])
exec(code)
hb = json.dumps(h).encode()
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + data[8 + n:])
PYEOF
}
