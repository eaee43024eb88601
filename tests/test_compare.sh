#!/usr/bin/env bash
# qbert compare: every report file is written; its accuracy equals a separate
# `qbert eval` of the same model directory exactly and its latency is a
# separate `qbert bench`'s within noise; each method is what `qbert quantize`
# makes under the same name; peak RSS is each method's own; bad requests fail
# before any long work; --resume keeps finished evaluations.  Paths carry a quote and spaces: the
# benchmark and tuning children get them as arguments, with no shell.
set -u
. "$(dirname "$0")/lib.sh"
need_shared data/sst2/dev.tsv
M="$TMP/it's a model"
cp -r "$SRC/models/bert-mini-sst2" "$M"
DEV=$SHARED/data/sst2/dev.tsv
CAL=$SHARED/data/sst2/train.tsv
R="$TMP/report 'q'"
N=120
[ -n "$SANITIZE" ] && N=24

"$QBERT" compare "$M" --data "$DEV" --calib "$CAL" --calib-n 32 --methods fp32,dynamic,static --limit $N \
  --max-length 66 --seq 32 --rounds 3 --runs 3 -o "$R" >"$TMP/out" 2>"$TMP/err"
check "compare runs" test $? -eq 0
for f in report.md report.json report.csv report.html accuracy_latency.svg size.svg speedup.svg radar.svg; do
  check "writes $f" test -s "$R/$f"
done
check "progress shows method i/N" grep -q "\[3/3\] static: evaluate" "$TMP/err"
check "benchmark rounds interleave, then reverse" \
  test "$(grep '^benchmark round' "$TMP/err" | tr '\n' ' ')" = "benchmark round 1/3: fp32 benchmark round 1/3: dynamic \
benchmark round 1/3: static benchmark round 2/3: static benchmark round 2/3: dynamic benchmark round 2/3: fp32 \
benchmark round 3/3: fp32 benchmark round 3/3: dynamic benchmark round 3/3: static "
check "report records max length and rounds" \
  test "$(json_get "$R/report.json" '(j["meta"]["max_length"], j["meta"]["bench_rounds"])')" = "(66, 3)"

# one meaning per name: compare's dynamic and static are quantize's
"$QBERT" quantize "$M" -o "$TMP/q-dynamic" --method dynamic >/dev/null
"$QBERT" quantize "$M" -o "$TMP/q-static" --method static --calib "$CAL" --calib-n 32 --max-length 66 >/dev/null
for m in dynamic static; do
  check "compare's $m is quantize --method $m" cmp -s "$R/models/$m/model.safetensors" "$TMP/q-$m/model.safetensors"
done
# and dynamic-rr is quantize --method dynamic --reduce-range
"$QBERT" compare "$M" --data "$DEV" --methods dynamic-rr --limit 24 --max-length 66 --seq 32 --rounds 1 --runs 1 \
  -o "$TMP/rr" >/dev/null 2>&1
"$QBERT" quantize "$M" -o "$TMP/q-rr" --method dynamic --reduce-range >/dev/null
check "compare's dynamic-rr is quantize --reduce-range" \
  cmp -s "$TMP/rr/models/dynamic-rr/model.safetensors" "$TMP/q-rr/model.safetensors"
# memory: each method's own peak, not the parent's
rss=$(json_get "$R/report.json" '" ".join(str(r["peak_rss_mb"]) for r in j["rows"])')
read -r rss_fp32 rss_dyn _ <<<"$rss"
echo "  peak RSS: fp32 $rss_fp32 MB, dynamic $rss_dyn MB"
# (not under ASan: its shadow memory and quarantine swamp a 4 MB model's weights)
[ -n "$SANITIZE" ] ||
  check "peak RSS differs between fp32 and dynamic" $PY -c "import sys; sys.exit(not $rss_dyn < 0.9 * $rss_fp32)"

# accuracy: exactly what eval says about the cached model
for m in dynamic static; do
  "$QBERT" eval "$R/models/$m" --data "$DEV" --limit $N --max-length 66 --json >"$TMP/$m.eval.json"
  want=$(json_get "$TMP/$m.eval.json" 'j["accuracy"]')
  got=$(json_get "$R/report.json" "[r for r in j['rows'] if r['method'] == '$m'][0]['accuracy']")
  check "$m accuracy equals eval ($got vs $want)" $PY -c "import sys; sys.exit(abs($got - $want) > 1e-9)"
done
# latency: a separate bench of the same directory, within noise (this shared
# 2-core machine makes single runs vary by 2x and more, so the bound is loose)
got=$(json_get "$R/report.json" "[r for r in j['rows'] if r['method'] == 'dynamic'][0]['p50_b1_ms']")
within=1
for try in 1 2 3; do
  "$QBERT" bench "$R/models/dynamic" --seq 32 --batch 1 --runs 5 --json >"$TMP/bench.json"
  want=$(json_get "$TMP/bench.json" 'j["p50_ms"]')
  echo "  dynamic p50 at batch 1: compare $got ms, bench $want ms"
  $PY -c "import sys; sys.exit(not 1/3 < $got / $want < 3)" && { within=0; break; }
done
check "latency equals bench within noise (a factor of 3, best of 3 tries)" test $within -eq 0

# --resume keeps finished rows
"$QBERT" compare "$M" --data "$DEV" --calib "$CAL" --calib-n 32 --methods fp32,dynamic,static --limit $N \
  --max-length 66 --seq 32 --rounds 1 --runs 2 -o "$R" --resume >/dev/null 2>"$TMP/err2"
check "resume keeps rows" test "$(grep -c 'evaluation kept from the earlier run' "$TMP/err2")" -eq 3
# ... and refuses rows made from other inputs or settings, naming what changed
# (arrays, not functions: expect_error runs its command under timeout)
resume=("$QBERT" compare "$M" --data "$DEV" --calib "$CAL" --calib-n 32 --methods fp32,dynamic,static --limit $N
  --max-length 66 --seq 32 --rounds 1 --runs 2 -o "$R" --resume)
expect_error "resume refuses another --limit" "was made with --limit $N; this run has --limit 20: use a new -o" \
  "${resume[@]}" --limit 20
expect_error "resume refuses another --max-length" "was made with --max-length 66; this run has --max-length 40" \
  "${resume[@]}" --max-length 40
expect_error "resume refuses another --calib-n (static's rows)" "was made with --calib-n 32; this run has --calib-n 16" \
  "${resume[@]}" --calib-n 16
head -41 "$DEV" >"$TMP/dev41.tsv"
expect_error "resume refuses another --data" "was made with --data .*dev.tsv; this run has --data .*dev41.tsv" \
  "${resume[@]}" --data "$TMP/dev41.tsv"
check "a refused resume keeps the rows" test -s "$R/rows/static.json" -a -s "$R/report.json"
RS="$TMP/rs"
small=(--data "$TMP/dev41.tsv" --methods fp32 --limit 20 --max-length 66 --seq 32 --rounds 1 --runs 2 -o "$RS")
"$QBERT" compare "$M" "${small[@]}" >/dev/null 2>&1
sed -i '2s/^/very /' "$TMP/dev41.tsv"
expect_error "resume refuses changed --data contents" "was made with --data contents sha256 [0-9a-f]+; this run has" \
  "$QBERT" compare "$M" "${small[@]}" --resume
cp -r "$M" "$TMP/m2"
expect_error "resume refuses another model" "was made with MODEL_DIR .*it's a model; this run has MODEL_DIR .*m2" \
  "$QBERT" compare "$TMP/m2" "${small[@]}" --resume
# an existing REPORT_DIR is continued (--resume), cleared (--force) or refused
expect_error "an existing REPORT_DIR needs --resume or --force" "rs already exists: use --resume to continue it" \
  "$QBERT" compare "$M" "${small[@]}"
echo mine >"$RS/notes.txt"
echo '{}' >"$RS/rows/stale.json"
"$QBERT" compare "$M" "${small[@]}" --force >/dev/null 2>&1
check "--force writes the report" test -s "$RS/report.md"
check "--force removes compare's earlier rows" test ! -e "$RS/rows/stale.json"
check "--force leaves other files alone" test "$(cat "$RS/notes.txt")" = mine
mkdir -p "$TMP/proj/models" && cp -r "$M" "$TMP/proj/models/mine"
expect_error "--force never removes a models/ holding the input" "would remove .*models/mine, which this run reads" \
  "$QBERT" compare "$TMP/proj/models/mine" "${small[@]}" -o "$TMP/proj" --force
check "... the model is still there" test -f "$TMP/proj/models/mine/config.json"
"$QBERT" compare "$TMP/m2" "${small[@]}" --force >/dev/null 2>&1
touch -d '2001-01-01' "$TMP/m2/model.safetensors"
expect_error "resume refuses a changed model.safetensors" "was made with model.safetensors [0-9]+ bytes, modified 20" \
  "$QBERT" compare "$TMP/m2" "${small[@]}" --resume
mkdir "$TMP/unrelated" && echo x >"$TMP/unrelated/a.txt"
expect_error "an unrelated directory is refused" "unrelated already exists" \
  "$QBERT" compare "$M" "${small[@]}" -o "$TMP/unrelated"
expect_error "--resume of an unrelated directory is refused" "unrelated has no rows/" \
  "$QBERT" compare "$M" "${small[@]}" -o "$TMP/unrelated" --resume
check "nothing written into an unrelated directory" test "$(ls -A "$TMP/unrelated")" = a.txt

# without fp32, no speedup or compression (never "nan"); labels name the batches run
"$QBERT" compare "$M" --data "$DEV" --methods dynamic --limit 20 --max-length 66 --seq 32 --batch 2,4 --rounds 1 \
  --runs 2 -o "$TMP/nofp32" >/dev/null 2>&1
check "no nan in any report file without fp32" \
  test -z "$(grep -liwE 'nanx?' "$TMP/nofp32"/report.* "$TMP/nofp32"/*.svg)"
check "findings say speedup and compression need fp32" grep -q "need fp32 among the methods" "$TMP/nofp32/report.md"
check "table labels name --batch 2,4" grep -q "p50 ms (b2) .* throughput b4 (seq/s)" "$TMP/nofp32/report.md"
check "findings name --batch 2,4" grep -q "Fastest at batch 2: dynamic.*Highest throughput at batch 4" \
  <(tr '\n' ' ' <"$TMP/nofp32/report.md")
check "no batch 1 or 8 label with --batch 2,4" \
  test -z "$(grep -lE 'b1\)|b8 \(|batch[- ][18]\b' "$TMP/nofp32"/report.md "$TMP/nofp32"/report.html "$TMP/nofp32"/*.svg)"
check "json and csv rows record the batches" test "$(json_get "$TMP/nofp32/report.json" \
  '(j["rows"][0]["batch_latency"], j["rows"][0]["batch_throughput"])')" = "(2, 4)" -a \
  "$(head -1 "$TMP/nofp32/report.csv" | tr ',' '\n' | tail -2 | tr '\n' ' ')" = "batch_latency batch_throughput "
check "help states the noisy rule as the code applies it" grep -q "interquartile range of its rounds' p50" \
  <("$QBERT" compare --help)

# the mixed method tunes its map in a child `qbert sensitivity`
if [ -z "$SANITIZE" ]; then
  "$QBERT" compare "$M" --data "$DEV" --calib "$CAL" --methods mixed --limit 24 --max-length 66 --seq 32 --rounds 1 --runs 3 \
    -o "$TMP/mixed \"q'" >/dev/null 2>"$TMP/err3"
  check "mixed method tunes its map" test -s "$TMP/mixed \"q'/sensitivity/precision_map.json"
  check "the tuned map keeps the classifier as dynamic does" \
    $PY -c "import json,sys; sys.exit('*' in json.load(open(sys.argv[1])))" "$TMP/mixed \"q'/sensitivity/precision_map.json"
  check "mixed row reported" $PY -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(j['rows'][0]['method'] != 'mixed')" "$TMP/mixed \"q'/report.json"
fi

# bad requests fail fast, with no report
bad() { # bad NAME PATTERN ARGS...
  local name=$1 pattern=$2; shift 2
  timeout 60 "$QBERT" compare "$M" "$@" >/dev/null 2>"$TMP/bad.err"
  local rc=$?
  if [ $rc -ne 1 ] && [ $rc -ne 2 ] || ! grep -qE "$pattern" "$TMP/bad.err"; then
    fail "$name: rc=$rc: $(head -c 300 "$TMP/bad.err")"
  else ok; fi
}
bad "unknown method" "unknown method 'int5'" --data "$DEV" --methods fp32,int5 -o "$TMP/r1"
bad "dataset does not fit the task" "CoNLL token tags" --data "$SHARED/data/conll2003/valid.txt" --methods fp32 -o "$TMP/r2"
printf 'sentence\tlabel\n' >"$TMP/empty.tsv"
bad "empty dataset" "no examples" --data "$TMP/empty.tsv" --methods fp32 -o "$TMP/r3"
touch "$TMP/afile"
bad "unwritable report dir" "not writable" --data "$DEV" --methods fp32 -o "$TMP/afile/sub"
bad "static without calibration" "need --calib" --data "$DEV" --methods static -o "$TMP/r4"
bad "missing data file" "nope.tsv: cannot open" --data "$TMP/nope.tsv" --methods fp32 -o "$TMP/r5"
bad "duplicate method" "methods names 'fp32' twice" --data "$DEV" --methods fp32,dynamic,fp32 -o "$TMP/r6"
bad "benchmark longer than the model's positions" "seq 600 exceeds the model's 512 positions" \
  --data "$DEV" --methods fp32 --seq 600 -o "$TMP/r7"
bad "--resume with --force" "give one" --data "$DEV" --methods fp32 --resume --force -o "$TMP/r8"
"$QBERT" compare "$M" --data "$DEV" --calib "$TMP/dev41.tsv" --methods static --limit 8 --seq 16 --rounds 1 --runs 1 \
  -o "$TMP/cal40" >/dev/null 2>&1
check "the report's calibration count is the texts used (40 of the 512 asked)" \
  grep -q "dev41.tsv (n = 40)" "$TMP/cal40/report.md"
printf 'sentence\tlabel\n' >"$TMP/nocal.tsv"
"$QBERT" compare "$M" --data "$DEV" --calib "$TMP/nocal.tsv" --methods static --limit 8 --seq 16 --rounds 1 --runs 1 \
  -o "$TMP/allfail" >/dev/null 2>"$TMP/err"
check "every method failed: exit 1, said, report kept" \
  test $? -eq 1 -a -s "$TMP/allfail/report.md" -a "$(tail -1 "$TMP/err")" = "qbert compare: error: 1 of 1 methods failed"
check "no report for failed requests" test ! -e "$TMP/r1/report.md"
for d in r1 r2 r3 r4 r5 r6 r7 r8; do
  check "a failed run leaves no REPORT_DIR it created ($d)" test ! -e "$TMP/$d"
done
# SIGTERM while a benchmark child runs: the child stops with compare
state() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return; s=${s##*) }; echo "$s"; } # STATE PPID ...
children_of() {
  local f pid
  for f in /proc/[0-9]*/stat; do
    pid=${f#/proc/}; pid=${pid%/stat}
    set -- $(state "$pid")
    [ "${2:-}" = "$P" ] && [ "${1:-}" != Z ] && echo "$pid"
  done
}
"$QBERT" compare "$M" --data "$DEV" --methods fp32 --limit 8 --seq 32 --rounds 1 --runs 100000 -o "$TMP/sig" \
  >/dev/null 2>&1 &
P=$!
kid=
for _ in $(seq 600); do kid=$(children_of | head -1); [ -n "$kid" ] && break; sleep 0.1; done
kill -TERM $P
wait $P
check "SIGTERM: compare dies of it" test $? -eq 143
for _ in $(seq 50); do s=$(state "$kid"); [ -z "$s" ] || [ "${s%% *}" = Z ] && break; sleep 0.1; done
check "SIGTERM: its benchmark child ($kid) stops too" test -n "$kid" -a \( -z "$s" -o "${s%% *}" = Z \)
finish
