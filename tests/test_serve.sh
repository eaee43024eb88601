#!/usr/bin/env bash
# qbert serve end to end, with real clients: curl, OpenAI's official Node
# client (tests/serve/package.json; skipped with a note when npm cannot
# install it) and wrk (tests/serve/load.lua).  Vectors and scores are
# checked against qbert embed / predict on the same inputs; every bad
# request gets its status and a JSON error while the server goes on; a short
# load, an overload against --max-concurrent-requests 64, and SIGTERM under
# load.  Labelled tsan: under a ThreadSanitizer build any report fails it.
set -u
. "$(dirname "$0")/lib.sh"
M=$SRC/models/bert-mini-sst2
need_shared data/sst2/dev.tsv
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
export NO_PROXY='*' no_proxy='*'
J='Content-Type: application/json'
KEY=test-key-123
SECS=${QB_SERVE_LOAD_SECONDS:-5} SLOW=1 TERM_INPUTS=32
[ -n "$SANITIZE" ] && SECS=3 SLOW=4 TERM_INPUTS=1
THREADS=${QB_SERVE_THREADS:-2}

# A bare encoder (the classifier's head removed) and a one-output
# cross-encoder (the head cut to its first row), from the bundled model.
B=$TMP/bare R=$TMP/rerank ML=$TMP/multi
mkdir -p "$B" "$R" "$ML"
cp "$M/model.safetensors" "$ML/"
retile "$M/model.safetensors" "$B/model.safetensors" "del h['classifier.weight'], h['classifier.bias']"
retile "$M/model.safetensors" "$R/model.safetensors" "
h['classifier.weight']['shape'] = [1, 256]; h['classifier.weight']['data_offsets'][1] -= 256 * 4
h['classifier.bias']['shape'] = [1]; h['classifier.bias']['data_offsets'][1] -= 4"
for d in "$B" "$R" "$ML"; do cp "$M/vocab.txt" "$M/tokenizer_config.json" "$d/"; done
$PY - "$M/config.json" "$B/config.json" "$R/config.json" "$ML/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
json.dump(dict(c, architectures=["BertModel"]), open(sys.argv[2], "w"))
json.dump(dict(c, id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0}), open(sys.argv[3], "w"))
json.dump(dict(c, problem_type="multi_label_classification"), open(sys.argv[4], "w"))
EOF

# start NAME MODEL_DIR ARGS...: a server on a free port; sets NAME_PORT, NAME_PID.
SERVERS=
trap 'kill $SERVERS 2>/dev/null; rm -rf "$TMP"' EXIT
start() {
  local name=$1 dir=$2; shift 2
  : >"$TMP/$name.log"
  "$QBERT" serve "$dir" --port 0 --threads "$THREADS" "$@" 2>"$TMP/$name.log" &
  local pid=$! port=
  SERVERS="$SERVERS $pid"
  for _ in $(seq 200); do
    port=$(sed -n 's|.* on http://.*:\([0-9]*\)/$|\1|p' "$TMP/$name.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { cat "$TMP/$name.log" >&2; fail "$name: the server did not start"; finish; exit 1; }
  eval "${name}_PORT=$port ${name}_PID=$pid"
}
# post PORT PATH BODY [curl args]: the status in $TMP/out.code, the body in
# $TMP/out.json; JSON and the key unless the args give headers of their own.
post() {
  local port=$1 path=$2 body=$3; shift 3
  [ $# -eq 0 ] && set -- -H "$J" -H "Authorization: Bearer $KEY"
  curl -s -o "$TMP/out.json" -w '%{http_code}' "$@" --data-binary "$body" "http://127.0.0.1:$port$path" >"$TMP/out.code"
}
AUTH="Authorization: Bearer $KEY"
# in_flight PORT N: waits up to 5 s for N requests in flight; their count in $inflight.
in_flight() {
  inflight=0
  for _ in $(seq 250); do
    inflight=$(curl -s -H "$AUTH" "http://127.0.0.1:$1/metrics" | sed -n 's/^qbert_requests_in_flight //p')
    [ "${inflight:-0}" -ge "$2" ] && break
    sleep 0.02
  done
}
healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/health")" = 200 ]; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# close_to A.json B.json EXPR_A EXPR_B: the two lists of vectors agree to 1e-6.
close_to() {
  $PY - "$@" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))
b = [json.loads(l) for l in open(sys.argv[2])] if sys.argv[2].endswith(".jsonl") else json.load(open(sys.argv[2]))
x, y = eval(sys.argv[3]), eval(sys.argv[4])
assert len(x) == len(y) > 0 and all(len(u) == len(v) > 0 for u, v in zip(x, y)), "shapes differ"
d = max(abs(p - q) for u, v in zip(x, y) for p, q in zip(u, v))
sys.exit(0 if d <= 1e-6 else f"max difference {d}")
EOF
}

# The bare encoder with prompts, "query" the default (sentence-transformers'
# config_sentence_transformers.json)
PR=$TMP/prompted
cp -r "$B" "$PR"
echo '{"prompts": {"query": "query: ", "doc": ""}, "default_prompt_name": "query"}' >"$PR/config_sentence_transformers.json"

start E "$B" --api-key "$KEY" --timeout 2 --max-input-length 64
start PR "$PR" --api-key "$KEY" --max-input-length 64
start P "$M" --api-key "$KEY"
start R "$R" --api-key "$KEY"
start ML "$ML" --api-key "$KEY"
T1="a gripping, beautifully acted film" T2="the plot is thin and the jokes fall flat" T3="not bad at all"

# --- real clients: curl ---
"$QBERT" embed "$B" "$T1" "$T2" "$T3" --max-length 64 --threads 1 >"$TMP/raw.jsonl"
"$QBERT" embed "$B" "$T1" "$T2" "$T3" --max-length 64 --normalize --threads 1 >"$TMP/norm.jsonl"
post "$E_PORT" /embed "{\"inputs\": [\"$T1\", \"$T2\", \"$T3\"], \"normalize\": false}"
check "/embed normalize=false: 200" test "$(cat "$TMP/out.code")" = 200
check "/embed normalize=false equals qbert embed" close_to "$TMP/out.json" "$TMP/raw.jsonl" a "[r['embedding'] for r in b]"
post "$E_PORT" /embed "{\"inputs\": [\"$T1\", \"$T2\", \"$T3\"]}"
check "/embed (normalized) equals qbert embed --normalize" close_to "$TMP/out.json" "$TMP/norm.jsonl" a "[r['embedding'] for r in b]"
post "$E_PORT" /embed "{\"inputs\": \"$T2\"}"
check "/embed of one string" close_to "$TMP/out.json" "$TMP/norm.jsonl" a "[b[1]['embedding']]"
post "$E_PORT" /v1/embeddings "{\"input\": [\"$T1\", \"$T2\", \"$T3\"], \"model\": \"m\", \"encoding_format\": \"base64\"}"
check "/v1/embeddings base64 (curl) equals qbert embed --normalize" close_to "$TMP/out.json" "$TMP/norm.jsonl" \
  "[list(__import__('struct').unpack('<256f', __import__('base64').b64decode(d['embedding']))) for d in a['data']]" \
  "[r['embedding'] for r in b]"
# /embed_all: one hidden_size row per token, whose mean (the bare model's
# pooling), first row and maximum give qbert embed's vectors
check "/info: the bare model pools by the mean" \
  bash -c "curl -s -H '$AUTH' http://127.0.0.1:$E_PORT/info | grep -q '\"pooling\":\"mean\"'"
"$QBERT" embed "$B" "$T1" "$T2" "$T3" --max-length 64 --pooling cls+max --threads 1 >"$TMP/clsmax.jsonl"
post "$E_PORT" /embed_all "{\"inputs\": [\"$T1\", \"$T2\", \"$T3\"]}"
check "/embed_all: 200" test "$(cat "$TMP/out.code")" = 200
check "/embed_all: one row of 256 per token of qbert embed's" $PY -c '
import json, sys
a, b = json.load(open(sys.argv[1])), [json.loads(l) for l in open(sys.argv[2])]
sys.exit(not all(len(x) == len(r["input_ids"]) and {len(t) for t in x} == {256} for x, r in zip(a, b)))
' "$TMP/out.json" "$TMP/raw.jsonl"
check "/embed_all's mean equals qbert embed" close_to "$TMP/out.json" "$TMP/raw.jsonl" \
  "[[sum(c) / len(x) for c in zip(*x)] for x in a]" "[r['embedding'] for r in b]"
check "/embed_all's first row and maximum equal qbert embed --pooling cls+max" close_to "$TMP/out.json" \
  "$TMP/clsmax.jsonl" "[x[0] + [max(c) for c in zip(*x)] for x in a]" "[r['embedding'] for r in b]"
# /similarity: the cosines of qbert embed's vectors with the source's
post "$E_PORT" /similarity "{\"inputs\": {\"source_sentence\": \"$T1\", \"sentences\": [\"$T2\", \"$T3\", \"$T1\"]}}"
check "/similarity: 200" test "$(cat "$TMP/out.code")" = 200
check "/similarity equals the cosines of qbert embed's vectors" close_to "$TMP/out.json" "$TMP/norm.jsonl" "[a]" \
  "[[sum(p * q for p, q in zip(b[0]['embedding'], r['embedding'])) for r in (b[1], b[2], b[0])]]"
post "$E_PORT" /tokenize "{\"inputs\": \"$T1\"}"
check "/tokenize ids equal qbert embed's" close_to "$TMP/out.json" "$TMP/raw.jsonl" "[[t['id'] for t in a[0]]]" "[b[0]['input_ids']]"
# prompts: the default one and a named one embed as the prefixed text
"$QBERT" embed "$B" "query: $T1" "query: $T2" "$T1" --max-length 64 --normalize --threads 1 >"$TMP/prompt.jsonl"
post "$PR_PORT" /embed "{\"inputs\": [\"$T1\", \"$T2\"]}"
check "/embed: the model's default prompt" close_to "$TMP/out.json" "$TMP/prompt.jsonl" a "[r['embedding'] for r in b[:2]]"
post "$PR_PORT" /embed "{\"inputs\": \"$T1\", \"prompt_name\": \"doc\"}"
check "/embed: prompt_name doc (empty)" close_to "$TMP/out.json" "$TMP/prompt.jsonl" a "[b[2]['embedding']]"
post "$PR_PORT" /similarity "{\"inputs\": {\"source_sentence\": \"$T1\", \"sentences\": [\"$T2\"]}, \"parameters\": {\"prompt_name\": \"query\"}}"
check "/similarity: parameters.prompt_name" close_to "$TMP/out.json" "$TMP/prompt.jsonl" "[a]" \
  "[[sum(p * q for p, q in zip(b[0]['embedding'], b[1]['embedding']))]]"
post "$PR_PORT" /tokenize "{\"inputs\": \"$T1\", \"prompt_name\": \"query\"}"
check "/tokenize: the prompt's tokens first" close_to "$TMP/out.json" "$TMP/prompt.jsonl" "[[t['id'] for t in a[0]]]" \
  "[b[0]['input_ids']]"
post "$PR_PORT" /v1/embeddings "{\"input\": \"$T2\"}"
check "/v1/embeddings: the default prompt" close_to "$TMP/out.json" "$TMP/prompt.jsonl" \
  "[a['data'][0]['embedding']]" "[b[1]['embedding']]"
# bert-mini's vocab.txt is bert-base-uncased's: offsets as tokenizers gives them for its tokenizer.json
tokenize_as_hf() { # tokenize_as_hf OUT.json TEXT(JSON-escaped) SPECIALS
  $PY - "$1" "$SRC/tests/data/tokenizer_json/offsets.jsonl" "$2" "$3" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))[0]
text, specials = json.loads('"' + sys.argv[3] + '"'), sys.argv[4] == "true"
want = next(j for j in map(json.loads, open(sys.argv[2]))
            if j["tokenizer"] == "bert-base-uncased" and j["text"] == text and j["text_pair"] is None)
exp = []
for i, s, (a, b) in zip(want["ids"], want["special"], want["offsets"]):
    if s and specials:
        exp.append((i, True, None, None))
    elif not s:
        exp.append((i, False, a, b, text.encode()[a:b].decode()))
have = [(t["id"], t["special"], t["start"], t["stop"]) + (() if t["special"] else (t["text"],)) for t in got]
if have != exp:
    sys.exit("got  %s\nwant %s" % (have, exp))
EOF
}
# decode_as_hf OUT.json TEXT(JSON-escaped) SKIP: both lists decoded as tokenizers decodes that text's ids
decode_as_hf() {
  $PY - "$1" "$SRC/tests/data/tokenizer_json/offsets.jsonl" "$2" "$3" <<'EOF'
import json, sys
text = json.loads('"' + sys.argv[3] + '"')
want = next(j for j in map(json.loads, open(sys.argv[2])) if j["tokenizer"] == "bert-base-uncased" and j["text"] == text)
want = want["decoded" if sys.argv[4] == "true" else "decoded_all"]
got = json.load(open(sys.argv[1]))
if got != [want, want]:
    sys.exit("got  %r\nwant %r" % (got, [want, want]))
EOF
}
for T4 in 'Korean 가나다 and ½ cup, Ⅷ kings' 'two\u0085words and\u00a0nbsp\u200bzwsp' \
  "Hello, World! state-of-the-art 12,345.67 don't"; do
  for SPECIALS in true false; do
    post "$E_PORT" /tokenize "{\"inputs\": [\"$T4\"], \"add_special_tokens\": $SPECIALS}"
    check "/tokenize \"$T4\" add_special_tokens=$SPECIALS: tokenizers' ids, offsets and texts" \
      tokenize_as_hf "$TMP/out.json" "$T4" "$SPECIALS"
  done
  post "$E_PORT" /tokenize "{\"inputs\": \"$T4\"}"
  IDS=$($PY -c "import json, sys; print(json.dumps([t['id'] for t in json.load(open(sys.argv[1]))[0]]))" "$TMP/out.json")
  for SKIP in true false; do
    post "$E_PORT" /decode "{\"ids\": [$IDS, $IDS], \"skip_special_tokens\": $SKIP}"
    check "/decode \"$T4\" skip_special_tokens=$SKIP: tokenizers' text" decode_as_hf "$TMP/out.json" "$T4" "$SKIP"
  done
done

"$QBERT" predict "$M" "$T1" "$T2" "$T3" --json --threads 1 >"$TMP/pred.jsonl"
"$QBERT" predict "$M" "$T1" --pair "$T3" --json --threads 1 >"$TMP/pair.jsonl"
post "$P_PORT" /predict "{\"inputs\": [[\"$T1\"], [\"$T2\"], [\"$T3\"]], \"raw_scores\": true}"
check "/predict raw_scores equal qbert predict's logits" close_to "$TMP/out.json" "$TMP/pred.jsonl" \
  "[[s['score'] for s in sorted(r, key=lambda s: s['label'])] for r in a]" \
  "[[l for _, l in sorted(zip(['negative', 'positive'], r['logits']))] for r in b]"
post "$P_PORT" /predict "{\"inputs\": \"$T1\"}"
check "/predict: top label's score is qbert predict's probability" close_to "$TMP/out.json" "$TMP/pred.jsonl" \
  "[[a[0]['score']], [a[0]['label'] == 'positive']]" "[[b[0]['probability']], [b[0]['label'] == 'positive']]"
post "$P_PORT" /predict "{\"inputs\": [\"$T1\", \"$T3\"], \"raw_scores\": true}"
check "/predict of a pair" close_to "$TMP/out.json" "$TMP/pair.jsonl" \
  "[[s['score'] for s in sorted(a, key=lambda s: s['label'])]]" "[b[0]['logits']]"
"$QBERT" predict "$ML" "$T1" "$T2" --json --threads 1 >"$TMP/multi.jsonl"
post "$ML_PORT" /predict "{\"inputs\": [[\"$T1\"], [\"$T2\"]]}"
check "/predict multi-label: the sigmoids qbert predict prints" close_to "$TMP/out.json" "$TMP/multi.jsonl" \
  "[[s['score'] for s in sorted(r, key=lambda s: s['label'])] for r in a]" \
  "[[p for _, p in sorted(zip(['negative', 'positive'], r['scores']))] for r in b]"
for t in "$T2" "$T1" "$T3"; do "$QBERT" predict "$R" "is it good?" --pair "$t" --json --threads 1; done >"$TMP/rr.jsonl"
post "$R_PORT" /rerank "{\"query\": \"is it good?\", \"texts\": [\"$T2\", \"$T1\", \"$T3\"], \"raw_scores\": true, \"return_text\": true}"
check "/rerank raw scores equal qbert predict --pair, sorted" close_to "$TMP/out.json" "$TMP/rr.jsonl" \
  "[[r['score'] for r in sorted(a, key=lambda r: r['index'])], [x['score'] >= y['score'] for x, y in zip(a, a[1:])]]" \
  "[[r['logits'][0] for r in b], [True] * (len(b) - 1)]"
curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$P_PORT/info" >"$TMP/info.json"
check "/info" test "$(json_get "$TMP/info.json" "j['architecture'], j['max_input_length'], sorted(j['model_type']['classifier']['label2id'])")" \
  = "BertForSequenceClassification 512 ['negative', 'positive']"
curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$P_PORT/metrics" >"$TMP/metrics.txt"
check "/metrics: Prometheus counters and histograms" bash -c "grep -q '^qbert_requests_total{endpoint=\"predict\"} 3$' '$TMP/metrics.txt' &&
  grep -q '^qbert_batch_size_bucket{le=\"+Inf\"} [1-9]' '$TMP/metrics.txt' && grep -q '^qbert_queue_depth 0$' '$TMP/metrics.txt'"

# One lane: the same logits; a third is refused as a usage error.
start S "$M" --api-key "$KEY" --parallel-batches 1
post "$S_PORT" /predict "{\"inputs\": [[\"$T1\"], [\"$T2\"], [\"$T3\"]], \"raw_scores\": true}"
check "--parallel-batches 1: /predict equals qbert predict" close_to "$TMP/out.json" "$TMP/pred.jsonl" \
  "[[s['score'] for s in sorted(r, key=lambda s: s['label'])] for r in a]" \
  "[[l for _, l in sorted(zip(['negative', 'positive'], r['logits']))] for r in b]"
kill -TERM "$S_PID"; wait "$S_PID"
"$QBERT" serve "$M" --parallel-batches 3 >/dev/null 2>"$TMP/pb.err"
rc=$?
check "--parallel-batches 3: usage error, rc $rc ($(cat "$TMP/pb.err"))" test $rc = 2 -a "$(wc -l <"$TMP/pb.err")" = 1
expect_error "serve: an unknown --default-prompt-name" 'no prompt named "passage"' \
  "$QBERT" serve "$PR" --port 0 --default-prompt-name passage
expect_error "serve: --default-prompt-name on a classifier" 'default-prompt-name is for embedding models' \
  "$QBERT" serve "$M" --port 0 --default-prompt-name query

# A masked-LM checkpoint is served as an embedding model, as qbert embed
# runs it; a host name binds; /info names a quantized model's weight format
need_shared tools/make_random_checkpoint.py
$PY "$SHARED/tools/make_random_checkpoint.py" bert-mlm-mini "$TMP/mlm" >/dev/null
"$QBERT" quantize "$M" -o "$TMP/int8" --method dynamic >/dev/null
start MLM "$TMP/mlm" --host localhost
start Q8 "$TMP/int8"
"$QBERT" embed "$TMP/mlm" "$T1" "$T3" --threads 1 >"$TMP/mlm.jsonl"
post "$MLM_PORT" /embed "{\"inputs\": [\"$T1\", \"$T3\"], \"normalize\": false}" -H "$J"
check "a masked-LM model on /embed equals qbert embed (--host localhost)" close_to "$TMP/out.json" "$TMP/mlm.jsonl" a \
  "[r['embedding'] for r in b]"
check "/info: a masked-LM model is an embedding model" \
  bash -c "curl -s http://localhost:$MLM_PORT/info | grep -q '\"model_type\":{\"embedding\"'"
check "/info: model_dtype of a dynamic int8 model" \
  bash -c "curl -s http://127.0.0.1:$Q8_PORT/info | grep -q '\"model_dtype\":\"int8\"'"
for s in MLM Q8; do pid=${s}_PID; kill -TERM "${!pid}"; wait "${!pid}"; done

# --- real clients: OpenAI's Node client ---
NPM_DIR=${QB_BUILD_DIR:-$TMP}/serve-npm
npm_ready() {
  command -v node >/dev/null && command -v npm >/dev/null || return 1
  cmp -s "$SRC/tests/serve/package-lock.json" "$NPM_DIR/package-lock.json" && [ -d "$NPM_DIR/node_modules/openai" ] && return 0
  mkdir -p "$NPM_DIR" && cp "$SRC/tests/serve/package.json" "$SRC/tests/serve/package-lock.json" "$NPM_DIR/" &&
    (cd "$NPM_DIR" && timeout 120 npm ci --prefer-offline --no-audit --no-fund --ignore-scripts >"$TMP/npm.log" 2>&1)
}
if npm_ready; then
  cp "$SRC/tests/serve/openai_embed.mjs" "$NPM_DIR/"
  node "$NPM_DIR/openai_embed.mjs" "http://127.0.0.1:$E_PORT/v1" "$KEY" "$T1" "$T2" "$T3" >"$TMP/oa.json" 2>"$TMP/oa.err"
  check "openai client ran: $(head -c 300 "$TMP/oa.err")" test -s "$TMP/oa.json"
  for f in float default base64; do
    check "openai client, $f: equals qbert embed --normalize" close_to "$TMP/oa.json" "$TMP/norm.jsonl" "a['$f']" "[r['embedding'] for r in b]"
  done
  check "openai client: usage and model" test "$(json_get "$TMP/oa.json" "j['model'], j['usage']['prompt_tokens'] > 0")" = "qbert-test True"
else
  [ "${CI:-}" = "true" ] && fail "npm could not install tests/serve (CI=true requires it): $(tail -3 "$TMP/npm.log" 2>/dev/null)"
  echo "note: skipped the OpenAI client checks: node/npm missing or the npm registry unreachable"
fi

# --- bad requests: the status, a JSON error, and the server goes on ---
bad() { # bad NAME STATUS ERROR_TYPE PORT PATH BODY [curl args]
  local name=$1 status=$2 type=$3; shift 3
  post "$@"
  local got; got=$(cat "$TMP/out.code")
  # TEI's {"error", "error_type"}, or OpenAI's {"error": {"message", "type"}} on /v1
  local err; err=$($PY -c "import json,sys; e=json.load(open(sys.argv[1]))
print(e['error']['type'] if isinstance(e['error'], dict) else e['error_type'])" "$TMP/out.json" 2>/dev/null)
  if [ "$got" != "$status" ] || [ "$err" != "$type" ]; then fail "$name: got $got $(head -c 200 "$TMP/out.json"), want $status $type"
  elif ! healthy "$E_PORT"; then fail "$name: the server stopped serving"
  else ok; fi
}
bad "malformed JSON" 400 validation "$E_PORT" /embed '{"inputs": ["a",'
bad "not an object" 400 validation "$E_PORT" /embed '["a"]'
bad "inputs of the wrong type" 400 validation "$E_PORT" /embed '{"inputs": 3}'
bad "invalid UTF-8" 400 validation "$E_PORT" /embed "$(printf '{"inputs": "\xff\xfe"}')"
bad "empty input list" 400 empty "$E_PORT" /embed '{"inputs": []}'
$PY -c "import json; print(json.dumps({'inputs': ['word'] * 10000}))" >"$TMP/many.json"
bad "10,000 inputs" 413 validation "$E_PORT" /embed "@$TMP/many.json"
head -c 100000000 /dev/zero | tr '\0' a >"$TMP/big.json"
bad "a 100 MB body" 413 validation "$E_PORT" /embed "@$TMP/big.json"
bad "a 100 MB chunked body" 413 validation "$E_PORT" /embed "@$TMP/big.json" -H "$J" -H "$AUTH" -H 'Transfer-Encoding: chunked'
rm -f "$TMP/big.json"
# http.client sends the whole body before it reads: a 413 sent before the
# body is read meets a reset socket there, not the reply
$PY - "$E_PORT" "$KEY" >"$TMP/over.txt" 2>&1 <<'PYEOF'
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
c.request("POST", "/embed", body=b"a" * 3000000,
          headers={"Content-Type": "application/json", "Authorization": "Bearer " + sys.argv[2]})
r = c.getresponse()
print(r.status, json.loads(r.read())["error_type"])
PYEOF
check "a 3 MB body from http.client: 413, not a reset" test "$(cat "$TMP/over.txt")" = "413 validation"
bad "an input over --max-input-length" 422 validation "$E_PORT" /embed "{\"inputs\": \"$(printf 'word %.0s' $(seq 100))\"}"
bad "wrong content type" 415 validation "$E_PORT" /embed '{"inputs": "a"}' -H 'Content-Type: text/plain' -H "$AUTH"
bad "unknown path" 404 not_found "$E_PORT" /nope '{}'
bad "wrong method" 405 validation "$E_PORT" /embed '' -X GET -H "$AUTH"
bad "missing API key" 401 unauthorized "$E_PORT" /embed '{"inputs": "a"}' -H "$J"
bad "wrong API key" 401 unauthorized "$E_PORT" /embed '{"inputs": "a"}' -H "$J" -H 'Authorization: Bearer nope'
bad "/predict on an embedding model" 400 validation "$E_PORT" /predict '{"inputs": "a"}'
bad "/embed_all on a classifier" 400 validation "$P_PORT" /embed_all '{"inputs": "a"}'
bad "/similarity without sentences" 400 empty "$E_PORT" /similarity '{"inputs": {"source_sentence": "a", "sentences": []}}'
bad "/similarity of a list" 400 validation "$E_PORT" /similarity '{"inputs": ["a", "b"]}'
bad "/similarity's parameters not an object" 400 validation "$E_PORT" /similarity \
  '{"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": []}'
bad "base64 or float only" 400 validation "$E_PORT" /v1/embeddings '{"input": "a", "encoding_format": "int8"}'
bad "dimensions it cannot give" 400 validation "$E_PORT" /v1/embeddings '{"input": "a", "dimensions": 10}'
bad "dimensions on /embed" 400 validation "$E_PORT" /embed '{"inputs": "a", "dimensions": 10}'
bad "truncation_direction Left (cut at the right only)" 422 validation "$E_PORT" /embed \
  '{"inputs": "a", "truncation_direction": "Left"}'
bad "truncation_direction of another value" 400 validation "$E_PORT" /embed '{"inputs": "a", "truncation_direction": "Up"}'
printf '{"inputs": "a"}' | gzip >"$TMP/body.gz"
bad "a gzip body" 415 validation "$E_PORT" /embed "@$TMP/body.gz" -H "$J" -H "$AUTH" -H 'Content-Encoding: gzip'
post "$E_PORT" /v1/embeddings '{"input": []}'
check "/v1/embeddings errors in OpenAI's shape" test "$(json_get "$TMP/out.json" \
  "sorted(j['error']), j['error']['type'], j['error']['message']")" = "['code', 'message', 'param', 'type'] empty no inputs"
check "HEAD /health: 200" test "$(curl -s -o /dev/null -w '%{http_code}' -I "http://127.0.0.1:$E_PORT/health")" = 200
check "405 names the methods allowed" bash -c "curl -si -X PUT -H '$AUTH' http://127.0.0.1:$E_PORT/embed | grep -qi '^Allow: POST'"
curl -si -X OPTIONS -H "$AUTH" "http://127.0.0.1:$E_PORT/info" >"$TMP/options.txt"
check "OPTIONS: 204 with the methods in Allow" bash -c "head -1 '$TMP/options.txt' | grep -q ' 204' &&
  grep -qi '^Allow: GET, HEAD, OPTIONS' '$TMP/options.txt'"
$PY - "$E_PORT" "$KEY" >"$TMP/cl.txt" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
body = b'{"inputs": "a"}'
s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
          b"Content-Length: 3\r\nAuthorization: Bearer %s\r\n\r\n%s" % (len(body), sys.argv[2].encode(), body))
s.settimeout(10)
print(s.recv(200).split(b"\r\n")[0].decode())
PYEOF
check "two Content-Lengths that differ: 400 ($(cat "$TMP/cl.txt"))" grep -q '^HTTP/1.1 400' "$TMP/cl.txt"
bad "normalize not a boolean" 400 validation "$E_PORT" /embed '{"inputs": "a", "normalize": "no"}'
bad "truncate not a boolean" 400 validation "$E_PORT" /embed '{"inputs": "a", "truncate": 1}'
bad "raw_scores not a boolean" 400 validation "$P_PORT" /predict '{"inputs": "a", "raw_scores": "yes"}'
bad "add_special_tokens not a boolean" 400 validation "$E_PORT" /tokenize '{"inputs": "a", "add_special_tokens": "no"}'
bad "skip_special_tokens not a boolean" 400 validation "$E_PORT" /decode '{"ids": [1, 2], "skip_special_tokens": 0}'
bad "an unknown prompt_name" 422 validation "$PR_PORT" /embed '{"inputs": "a", "prompt_name": "passage"}'
bad "prompt_name on a model without prompts" 422 validation "$E_PORT" /embed '{"inputs": "a", "prompt_name": "query"}'
bad "prompt_name not a string" 400 validation "$PR_PORT" /embed '{"inputs": "a", "prompt_name": 3}'
bad "prompt_name on /predict" 400 validation "$P_PORT" /predict '{"inputs": "a", "prompt_name": "query"}'
bad "/decode without ids" 400 empty "$E_PORT" /decode '{"ids": []}'
bad "/decode of a string" 400 empty "$E_PORT" /decode '{"ids": "101 102"}'
bad "/decode of a non-id" 400 validation "$E_PORT" /decode '{"ids": [[101], [1.5]]}'
bad "/decode past the vocabulary" 422 tokenizer "$E_PORT" /decode '{"ids": [101, 99999999]}'
for c in '[-1]|"ids"[0] is' '[[101], [7, -1]]|"ids"[1][1] is'; do
  post "$E_PORT" /decode "{\"ids\": ${c%%|*}}"
  check "/decode names the bad id's place: ${c#*|}" test "$(json_get "$TMP/out.json" 'j["error"]')" = "${c#*|} not a token id"
done
post "$E_PORT" /embed "{\"inputs\": \"$(printf 'word %.0s' $(seq 100))\", \"truncate\": true}"
check "truncate: true cuts instead" test "$(cat "$TMP/out.code")" = 200
LONG="{\"source_sentence\": \"a\", \"sentences\": [\"$(printf 'word %.0s' $(seq 100))\"]}"
bad "/similarity of a sentence over --max-input-length" 422 validation "$E_PORT" /similarity "{\"inputs\": $LONG}"
check "  and its hint names parameters.truncate" grep -q 'send \\"parameters\\": {\\"truncate\\": true}' "$TMP/out.json"
post "$E_PORT" /similarity "{\"inputs\": $LONG, \"parameters\": {\"truncate\": true}}"
check "/similarity: parameters.truncate cuts instead" test "$(cat "$TMP/out.code")" = 200
# A client that sends half a request and goes silent is cut off by --timeout 2, while others are served.
$PY - "$E_PORT" "$KEY" >"$TMP/half.txt" <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
          b"Authorization: Bearer " + sys.argv[2].encode() + b"\r\n\r\n{\"inp")
t = time.time(); s.settimeout(30)
try: data = s.recv(100)
except Exception as e: data = b"exception"
print("closed" if data == b"" else "got:" + data.decode(errors="replace"), round(time.time() - t))
EOF
half=$!
sleep 0.5
check "served while a client stalls" healthy "$E_PORT"
wait $half
check "a stalled half request is closed after --timeout ($(cat "$TMP/half.txt"))" grep -Eq '^closed [1-5]$' "$TMP/half.txt"

# --- load: wrk, 32 connections vs one at a time, SST-2 dev sentences ---
$PY -c "
import json, sys
for l in list(open(sys.argv[1]))[1:]: print(json.dumps({'inputs': l.split('\t')[0].strip()}))" \
  "$SHARED/data/sst2/dev.tsv" >"$TMP/bodies.jsonl"
LUA=$SRC/tests/serve/load.lua
wrk_run() { # wrk_run OUT PORT CONNECTIONS SECONDS
  wrk -t "$(($3 < 2 ? 1 : 2))" -c "$3" -d "$4s" --timeout 10s -s "$LUA" "http://127.0.0.1:$2" -- "$TMP/bodies.jsonl" /predict "$KEY" >"$1" 2>&1
}
field() { sed -n "s/^RESULT.* $2 \([0-9.]*\).*/\1/p" "$1"; }
if command -v wrk >/dev/null; then
  wrk_run "$TMP/warm.txt" "$P_PORT" 32 1
  rss0=$(rss_kb "$P_PID")
  wrk_run "$TMP/one.txt" "$P_PORT" 1 "$SECS"
  curl -s -H "$AUTH" "http://127.0.0.1:$P_PORT/metrics" >"$TMP/lanes0.txt"
  wrk_run "$TMP/w32.txt" "$P_PORT" 32 "$SECS" &
  load=$!
  # Under load, batches run side by side on a thread each (the server's
  # lanes): the logits must not change.
  sleep 1
  bad=0
  kept=0
  for i in $(seq 5); do
    # each lane keeps to its own CPUs while they run side by side
    all=$(sed -n 's/^Cpus_allowed_list:\s*//p' /proc/"$P_PID"/status)
    masks=$(for t in /proc/"$P_PID"/task/*; do
      grep -q '^qbert-lane' "$t/comm" 2>/dev/null && sed -n 's/^Cpus_allowed_list:\s*//p' "$t/status"
    done | grep -vx "$all" | sort -u | wc -l)
    [ "$masks" -ge 2 ] && kept=$((kept + 1))
    post "$P_PORT" /predict "{\"inputs\": [[\"$T1\"], [\"$T2\"], [\"$T3\"]], \"raw_scores\": true}"
    close_to "$TMP/out.json" "$TMP/pred.jsonl" "[[s['score'] for s in sorted(r, key=lambda s: s['label'])] for r in a]" \
      "[[l for _, l in sorted(zip(['negative', 'positive'], r['logits']))] for r in b]" 2>>"$TMP/underload.txt" || bad=$((bad + 1))
  done
  wait $load
  check "load: /predict under 32 connections equals qbert predict ($bad of 5 differ)" test $bad = 0
  if [ "$THREADS" -ge 2 ] && [ "$(nproc)" -ge 2 ]; then
    check "load: the two lanes kept to their own CPUs in $kept of 5 looks" test "$kept" -ge 1
  fi
  # and every lane kept running them (a lane that quit once left the
  # other to serve alone at half the rate)
  curl -s -H "$AUTH" "http://127.0.0.1:$P_PORT/metrics" >"$TMP/lanes1.txt"
  shares=$(awk '/^qbert_batches_total\{/ { if (FILENAME == ARGV[1]) a[$1] = $2; else d[$1] = $2 - a[$1] }
    END { for (k in d) t += d[k]; for (k in d) printf "%s%.2f", n++ ? " " : "", d[k] / t }' "$TMP/lanes0.txt" "$TMP/lanes1.txt")
  want=$([ "$THREADS" -ge 2 ] && echo 2 || echo 1)
  # A sanitizer's slowdown is not the same in every thread, so there the
  # lanes need only both have run.
  least=$([ -n "$SANITIZE" ] && echo 0.01 || echo 0.2)
  check "load: each of $want lanes ran $least of the batches or more (shares: $shares)" \
    awk -v s="$shares" -v w="$want" -v least="$least" \
    'BEGIN { n = split(s, v, " "); for (i = 1; i <= n; i++) if (v[i] < least) exit 1; exit n != w }'
  rss1=$(rss_kb "$P_PID")
  errs=0
  for e in connect read write timeout non2xx; do errs=$((errs + $(field "$TMP/w32.txt" $e))); done
  check "load, 32 connections: requests and zero errors ($(grep RESULT "$TMP/w32.txt"))" \
    test "$(field "$TMP/w32.txt" requests)" -gt 0 -a "$errs" = 0
  echo "load: 1 connection $(field "$TMP/one.txt" rps) req/s, 32 connections $(field "$TMP/w32.txt" rps) req/s" \
    "(p50 $(field "$TMP/w32.txt" p50_ms) ms, p99 $(field "$TMP/w32.txt" p99_ms) ms); RSS $rss0 -> $rss1 kB"
  # Throughput and RSS growth are figures, not checks: a shared machine
  # moves them (bench/serve_load.sh measures them, A B interleaved);
  # leaks are the sanitizer build's to find.

  # --- overload: 2,000 connections against 64 admitted requests ---
  conns=2000
  [ "$(ulimit -n)" -lt 4200 ] && { ulimit -n 4200 2>/dev/null || conns=$(( $(ulimit -n) / 2 - 100 )); }
  [ "$conns" -lt 2000 ] && echo "note: ulimit -n $(ulimit -n) allows $conns connections only"
  start O "$M" --api-key "$KEY" --max-concurrent-requests 64
  rss0=$(rss_kb "$O_PID")
  wrk -t 2 -c "$conns" -d "$SECS"s --timeout 10s -s "$LUA" "http://127.0.0.1:$O_PORT" -- "$TMP/bodies.jsonl" /predict "$KEY" >"$TMP/over.txt" 2>&1 &
  flood=$!
  sleep 1
  for i in $(seq 20); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "$J" -H "Authorization: Bearer $KEY" -d '{"inputs": "ok"}' "http://127.0.0.1:$O_PORT/predict"
  done >"$TMP/probe.txt"
  rss_peak=$(rss_kb "$O_PID")
  wait $flood
  n429=$(awk '/^STATUS 429/ {print $3}' "$TMP/over.txt")
  n200=$(awk '/^STATUS 200/ {print $3}' "$TMP/over.txt")
  # (under the sanitizers the admitted few may not finish within the flood)
  check "overload: the excess gets 429 (${n429:-0}) and the rest is served (${n200:-0})" \
    test "${n429:-0}" -gt 0 -a "${n200:-0}${SANITIZE}" != 0
  slow429=$(awk -v s="$SLOW" '$1 == 429 && $2 > s {n++} END {print n + 0}' "$TMP/probe.txt")
  check "overload: 429 comes within $SLOW s ($(awk '$1 == 429 {printf "%s ", $2}' "$TMP/probe.txt"))" test "$slow429" = 0
  # (the flood's admitted requests may still be running: 429 until they are done)
  for _ in $(seq 60); do
    post "$O_PORT" /predict '{"inputs": "still there?"}'
    [ "$(cat "$TMP/out.code")" = 429 ] || break
    sleep 0.5
  done
  check "overload: still serving" test "$(cat "$TMP/out.code")" = 200
  check "overload: RSS bounded ($rss0 -> $rss_peak kB)" test "$rss_peak" -lt $((rss0 + 400000))
  echo "overload: $conns connections: $(grep RESULT "$TMP/over.txt"); 429s $n429, 200s $n200; RSS $rss0 -> $rss_peak kB;" \
    "probes while flooded (status seconds): $(tr '\n' ' ' <"$TMP/probe.txt")"
  kill -TERM "$O_PID"; wait "$O_PID"
else
  [ "${CI:-}" = "true" ] && fail "wrk not installed (scripts/install-deps.sh --test installs it)"
  echo "note: skipped the load checks: wrk not installed"
fi

# --- SIGTERM under load: in-flight requests complete, exit 0 within 5 s ---
# Our 4 requests go first and are seen in flight before wrk adds its load;
# each reply's arrival (its file's mtime) after the signal proves it was in
# flight when the signal came, whatever the machine's speed.
# Each request is sized to this machine, about 0.4 s of work (at most
# TERM_INPUTS inputs of up to 30 clauses), so that the four end well inside
# the 4 s drain: under a sanitizer one long input alone takes longer.
long() { printf 'a long and winding sentence about a film %.0s' $(seq "$1"); }
batch() { $PY -c "import json,sys; print(json.dumps({'inputs': [[sys.argv[1]]] * int(sys.argv[2]), 'truncate': True}))" \
  "$(long "$1")" "$2"; }
per4=$(curl -s -o /dev/null -w '%{time_total}' -H "$J" -H "Authorization: Bearer $KEY" --data-binary "$(batch 30 4)" \
  "http://127.0.0.1:$P_PORT/predict")
read -r TERM_INPUTS CLAUSES < <($PY -c "import sys
each = float(sys.argv[1]) / 4
print(max(1, min(int(sys.argv[2]), int(0.4 / each))), max(1, min(30, int(30 * 0.4 / each))))" "$per4" "$TERM_INPUTS")
BATCH=$(batch "$CLAUSES" "$TERM_INPUTS")
pids=
for i in $(seq 4); do
  curl -s -o "$TMP/t$i.json" -w '%{http_code}' -H "$J" -H "Authorization: Bearer $KEY" --data-binary "$BATCH" \
    "http://127.0.0.1:$P_PORT/predict" >"$TMP/t$i.code" &
  pids="$pids $!"
done
in_flight "$P_PORT" 4
check "SIGTERM: our 4 requests seen in flight ($inflight)" test "${inflight:-0}" -ge 4
if command -v wrk >/dev/null && [ -z "$SANITIZE" ]; then
  wrk_run "$TMP/term.txt" "$P_PORT" 4 3 &
  pids="$pids $!"
  sleep 0.3
fi
t0=$(date +%s.%N)
kill -TERM "$P_PID"
wait "$P_PID"
rc=$?
dt=$($PY -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$t0" "$(date +%s.%N)")
wait $pids
late=$($PY -c "import os, sys; print(sum(os.stat(f).st_mtime > float(sys.argv[1]) for f in sys.argv[2:]))" \
  "$t0" "$TMP"/t[0-9].json)
check "SIGTERM: sent while our requests ran ($late of 4 replied after it)" test "$late" -gt 0
check "SIGTERM: exit 0 (got $rc) within 5 s (took $dt s)" $PY -c "import sys; sys.exit(not ($rc == 0 and $dt < 5))"
codes=$(cat "$TMP"/t[0-9].code | tr -d '\n')
echo "SIGTERM under load ($TERM_INPUTS inputs of $CLAUSES clauses a request): exit $rc after $dt s; $late of 4 replies after the signal, statuses $codes; wrk: $(grep RESULT "$TMP/term.txt" 2>/dev/null)"
check "SIGTERM: requests in flight completed ($codes)" bash -c "[[ '$codes' =~ ^(200)+$ ]]"
check "SIGTERM: full replies" test "$($PY -c "import json,sys; print(sum(len(json.load(open(f))) for f in sys.argv[1:]))" "$TMP"/t[0-9].json 2>/dev/null)" = $((4 * TERM_INPUTS))

# --- SIGTERM with more queued than --drain-seconds allows: what ran is
# answered, the rest gets 500, every client a reply, exit 1 ---
start D "$M" --drain-seconds 0
BIG=$(batch 30 32)
pids=
for i in $(seq 6); do
  curl -s -o "$TMP/d$i.json" -w '%{http_code}' -H "$J" --data-binary "$BIG" "http://127.0.0.1:$D_PORT/predict" \
    >"$TMP/d$i.code" &
  pids="$pids $!"
done
in_flight "$D_PORT" 6
kill -TERM "$D_PID"
wait "$D_PID"
rc=$?
wait $pids
codes=$(cat "$TMP"/d[0-9].code | tr -d '\n')
n500=$(grep -l '"error":"the server is shutting down"' "$TMP"/d[0-9].json 2>/dev/null | wc -l)
echo "SIGTERM past the drain: $inflight in flight at the signal; exit $rc; statuses $codes; $n500 of 6 'shutting down'"
check "SIGTERM past the drain: every request answered, 200 or 500 ($codes)" bash -c "[[ '$codes' =~ ^(200|500){6}$ ]]"
check "SIGTERM past the drain: each 500 says the server is shutting down ($n500)" \
  test "$n500" = "$(grep -o 500 <<<"$codes" | wc -l)"
check "SIGTERM past the drain: exit 1 with requests left, else 0 (got $rc)" \
  test "$rc" = "$([ "$n500" -gt 0 ] && echo 1 || echo 0)"

for s in E R; do pid=${s}_PID; kill -TERM "${!pid}"; wait "${!pid}"; done
# a report fails the check and is shown, so a rare race is seen where it ran
reports=$(grep -l 'ThreadSanitizer\|AddressSanitizer\|LeakSanitizer\|runtime error' "$TMP"/*.log)
for f in $reports; do echo "== $(basename "$f"):" >&2; grep -m1 -A40 'Sanitizer\|runtime error' "$f" >&2; done
check "no sanitizer reports ($(echo $reports))" test -z "$reports"
finish
