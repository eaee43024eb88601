# Shared by the serve benches (sourced): a server on a free port, and the
# request bodies from SST-2 dev.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
SERVE_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# serve_start QBERT MODEL_DIR LOG [serve options]: starts the server in the
# background; sets SERVE_PID and SERVE_PORT, or prints the log and fails.
serve_start() {
  local bin=$1 model=$2 log=$3
  shift 3
  "$bin" serve "$model" --port 0 "$@" 2>"$log" &
  SERVE_PID=$!
  SERVE_PORT=
  for _ in $(seq 300); do
    SERVE_PORT=$(sed -n 's|.* on http://.*:\([0-9]*\)/$|\1|p' "$log")
    [ -n "$SERVE_PORT" ] && return 0
    sleep 0.1
  done
  cat "$log" >&2
  return 1
}

# sst2_bodies DATA OUT: one JSON body a line, {"inputs": sentence}
sst2_bodies() {
  /usr/bin/python3 -c "
import json, sys
for l in list(open(sys.argv[1]))[1:]: print(json.dumps({'inputs': l.split('\t')[0].strip()}))" "$1" >"$2"
}

# serve_wrk PORT CONNECTIONS SECONDS BODIES ENDPOINT: wrk's RESULT and STATUS lines
serve_wrk() {
  wrk -t "$(($2 < 2 ? 1 : 2))" -c "$2" -d "$3s" --timeout 10s -s "$SERVE_LIB_DIR/../tests/serve/load.lua" \
    "http://127.0.0.1:$1" -- "$4" "$5" | grep -E '^(RESULT|STATUS)'
}
