#!/usr/bin/env bash
# The malformed-input corpus, part two: output directories (paths, parents,
# siblings qbert did not create, two writers of one OUT), streams that meet
# a bad line, text output of crafted labels, and requests whose errors used
# to be unclear.  Each error case: exit 1, one stderr line naming the file
# and the problem, nothing partial left behind.
set -u
. "$(dirname "$0")/lib.sh"
M=$SRC/models/bert-mini-sst2

F16=("$QBERT" quantize "$M" --method fp16 --threads 1)
fp16() { "${F16[@]}" "$@"; }
# entries of directory $1 whose names start with $2, one a line
siblings() { (cd "$1" && ls -d "$2"* 2>/dev/null); }

# ---- output directories ----------------------------------------------------
O=$TMP/o; mkdir -p "$O"
fp16 -o "$O/slash/" >/dev/null 2>"$TMP/err"
check "-o OUT/: exit 0" test $? -eq 0
check "-o OUT/: the model is in OUT" test -f "$O/slash/model.safetensors" -a -f "$O/slash/config.json"
check "-o OUT/: nothing nested, no marker" test -z "$(ls -A "$O/slash" | grep -v -e '^config.json$' -e '^model.safetensors$' -e '^vocab.txt$' -e '^tokenizer_config.json$' -e '^spiece.model$')"
check "-o OUT/: nothing beside OUT" test "$(siblings "$O" slash)" = "slash"

expect_error "missing parent" "deep/er/out: parent directory .*deep/er does not exist \(use --parents" "${F16[@]}" -o "$O/deep/er/out"
check "missing parent: nothing created" test ! -e "$O/deep"
fp16 -o "$O/deep/er/out" --parents >/dev/null 2>&1
check "--parents creates them" test -f "$O/deep/er/out/model.safetensors"

"$QBERT" quantize "$M" --method fp16 -o "" >/dev/null 2>"$TMP/err"
check "-o \"\": usage error naming the option" test $? -eq 2 -a "$(grep -c . "$TMP/err")" -eq 1
check "-o \"\": message" grep -q -- "-o: empty path" "$TMP/err"
expect_error "-o ." "not a name a new directory can take" "${F16[@]}" -o "$O/."

# siblings named like staging directories that qbert did not create (no
# marker, or a live process's id) survive; a marked one of a dead process
# is swept
# (pids above pid_max, 4194304, are never alive)
USER_DIRS="sib.old-1 sib.tmp-1 sib.old-99999996 sib.tmp-99999995 sib.tmp-99999999-x"
for d in $USER_DIRS; do mkdir -p "$O/$d"; echo keep >"$O/$d/data"; done
mkdir -p "$O/sib.tmp-$$-0"
printf 'qbert staging pid %d\n' $$ >"$O/sib.tmp-$$-0/.qbert-staging"       # alive: this shell
mkdir -p "$O/sib.tmp-99999998-1"; printf 'qbert staging pid 99999998\n' >"$O/sib.tmp-99999998-1/.qbert-staging"
mkdir -p "$O/sib.tmp-99999997-1"; printf 'qbert staging pid 12345\n' >"$O/sib.tmp-99999997-1/.qbert-staging"  # marker of another pid
fp16 -o "$O/sib" >/dev/null 2>&1
fp16 -o "$O/sib" --force >/dev/null 2>&1
check "--force run: exit 0" test $? -eq 0
for d in $USER_DIRS; do check "user's $d survives with its contents" grep -q keep "$O/$d/data"; done
check "a live process's staging survives" test -d "$O/sib.tmp-$$-0"
check "a mismatched marker is not proof" test -d "$O/sib.tmp-99999997-1"
check "a dead run's marked staging is swept" test ! -e "$O/sib.tmp-99999998-1"
check "no staging of our own left" test "$(siblings "$O" sib | wc -l)" -eq 8

# an existing regular file: refused without --force, replaced with it
echo hi >"$O/file"
expect_error "existing file without --force" "file: already exists \(use --force" "${F16[@]}" -o "$O/file"
check "existing file kept" test "$(cat "$O/file")" = "hi"
fp16 -o "$O/file" --force >/dev/null 2>&1
check "--force over a file: OUT is the model" test -f "$O/file/model.safetensors"
check "--force over a file: no stray file" test "$(siblings "$O" file)" = "file"
# a link: replaced itself, what it points to untouched
mkdir -p "$O/target"; echo keep >"$O/target/data"; ln -s target "$O/link"
fp16 -o "$O/link" --force >/dev/null 2>&1
check "--force over a link: the link is replaced" test -d "$O/link" -a ! -L "$O/link" -a -f "$O/link/model.safetensors"
check "--force over a link: its target untouched" test "$(ls "$O/target")" = "data"

# two writers of one OUT: exactly one wins, the other says so, OUT is whole
for round in 1 2 3; do
  rm -rf "$O/same"
  "$QBERT" quantize "$M" --method dynamic --threads 1 -o "$O/same" >/dev/null 2>"$TMP/w1" & p1=$!
  "$QBERT" quantize "$M" --method dynamic --threads 1 -o "$O/same" >/dev/null 2>"$TMP/w2" & p2=$!
  wait $p1; r1=$?; wait $p2; r2=$?
  check "concurrent writers (round $round): one wins ($r1, $r2)" test "$((r1 + r2))" -eq 1 -a "$((r1 * r2))" -eq 0
  check "concurrent writers (round $round): the loser says why" grep -qh "same: already exists" "$TMP/w1" "$TMP/w2"
  check "concurrent writers (round $round): OUT loads" "$QBERT" info "$O/same" --json >/dev/null
  check "concurrent writers (round $round): no staging left" test "$(siblings "$O" same)" = "same"
done

# ---- streams ---------------------------------------------------------------
printf '%s\n' '{"text": "a fine film"}' '{"text": "dull"}' '{"text": "great"}' '{"text": "bad"}' '{"text": ' \
  '{"text": "after"}' >"$TMP/in.jsonl"
expect_error "bad JSONL line: stop" "in.jsonl:5: invalid JSON" "$QBERT" predict "$M" --input "$TMP/in.jsonl" --batch 8
check "bad JSONL line: the 4 results before it are written" test "$(grep -c . "$TMP/out")" -eq 4
"$QBERT" predict "$M" --input "$TMP/in.jsonl" --on-error skip --json >"$TMP/skip.jsonl" 2>"$TMP/skip.err"
check "skip: exit 0" test $? -eq 0
check "skip: one output line per input line" test "$(grep -c . "$TMP/skip.jsonl")" -eq 6
check "skip: an error record in the bad line's place" test "$(json_get <(sed -n 5p "$TMP/skip.jsonl") 'j["line"], "invalid JSON" in j["error"]')" = "5 True"
check "skip: the line after it is scored" test "$(json_get <(sed -n 6p "$TMP/skip.jsonl") 'j["text"]')" = "after"
check "skip: stderr names the line" grep -q "in.jsonl:5: invalid JSON.*(skipped)" "$TMP/skip.err"
printf 'first\nsecond\ncaf\xc3 au lait\nfourth\n' >"$TMP/utf8.txt"
expect_error "untokenizable line mid-batch: stop" "utf8.txt input 3.*UTF-8" "$QBERT" predict "$M" --input "$TMP/utf8.txt" --batch 8
check "untokenizable line: the results before it are written" test "$(cut -f3 "$TMP/out" | tr '\n' ' ')" = "first second "
printf '{"text": "not JSON here"}\n' >"$TMP/brace.txt"
"$QBERT" predict "$M" --input "$TMP/brace.txt" >"$TMP/brace.out"
check "a text line starting with { is text" test "$(cut -f3 "$TMP/brace.out")" = '{"text": "not JSON here"}'
"$QBERT" predict "$M" --input "$TMP/brace.txt" --input-format jsonl >"$TMP/brace.out"
check "--input-format jsonl reads it as JSON" test "$(cut -f3 "$TMP/brace.out")" = "not JSON here"
printf 'a fine film\rbad\r' >"$TMP/cr.txt"
expect_error "CR-only line endings (predict)" "cr.txt:1: carriage return inside a line" "$QBERT" predict "$M" --input "$TMP/cr.txt"
printf 'sentence\tlabel\ra fine film\t1\rbad\t0\r' >"$TMP/cr.tsv"
expect_error "CR-only line endings (eval)" "cr.tsv:1: carriage return inside a line" "$QBERT" eval "$M" --data "$TMP/cr.tsv"
printf 'sentence\tlabel\r\na fine film\t1\r\n' >"$TMP/crlf.tsv"
"$QBERT" eval "$M" --data "$TMP/crlf.tsv" --json >/dev/null
check "CRLF line endings are fine" test $? -eq 0
if [ -e "$SHARED/models/bert-mini-conll/config.json" ]; then # no fixed cap on the words of a text
  words=$($PY -c 'print(" ".join(["Paris"] * 5000))')
  "$QBERT" predict "$SHARED/models/bert-mini-conll" "$words" >"$TMP/words.out" 2>/dev/null
  check "token model: every one of 5000 words gets a tag or '-'" test "$(tr ' ' '\n' <"$TMP/words.out" | grep -c '^Paris/')" -eq 5000
fi

# ---- text output of crafted labels -----------------------------------------
C=$TMP/crafted; mkdir -p "$C"
for f in model.safetensors vocab.txt tokenizer_config.json; do ln -sf "$M/$f" "$C/$f"; done
$PY - "$M/config.json" "$C/config.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["id2label"] = {"0": "neg\nnegative\t0.9999\tforged line", "1": "pos\u001b[31m\u009b2J"}
c["label2id"] = {v: int(k) for k, v in c["id2label"].items()}
json.dump(c, open(sys.argv[2], "w"))
PYEOF
"$QBERT" predict "$C" "a gripping, beautifully acted film" "the plot is thin and the jokes fall flat" >"$TMP/cp.out"
check "crafted labels: one line per input" test "$(wc -l <"$TMP/cp.out")" -eq 2
check "crafted labels: no raw ESC or C1 byte" bash -c "! grep -qP '\\x1b|\\xc2\\x9b' '$TMP/cp.out'"
check "crafted labels: shown escaped" grep -qF 'pos\x1b[31m\u009b2J' "$TMP/cp.out"
check "crafted labels: newline shown escaped" grep -qF 'neg\nnegative\t0.9999\tforged line' "$TMP/cp.out"
"$QBERT" info "$C" >"$TMP/ci.out"
check "info: labels escaped on one line" test "$(grep -c '^labels ' "$TMP/ci.out")" -eq 1 -a "$(grep -cP '\x1b' "$TMP/ci.out")" -eq 0
printf 'sentence\tlabel\na fine film\t1\nbad\t0\n' >"$TMP/two.tsv"
"$QBERT" eval "$C" --data "$TMP/two.tsv" >"$TMP/ce.out"
check "eval: per-class table escaped" bash -c "! grep -qP '\\x1b|^negative' '$TMP/ce.out' && grep -qF 'pos\x1b[31m' '$TMP/ce.out'"
"$QBERT" predict "$M" "$(printf 'two\nlines\x1b[2J')" >"$TMP/ct.out"
check "a text with a newline and ESC stays one line" test "$(wc -l <"$TMP/ct.out")" -eq 1 -a "$(grep -cP '\x1b' "$TMP/ct.out")" -eq 0

# ---- requests whose errors used to be unclear ------------------------------
expect_error "percentile:0" "observer 'percentile:0': the percentile is a plain decimal in \(50, 100\]" \
  "$QBERT" quantize "$M" --method static --calib "$TMP/two.tsv" --observer percentile:0 -o "$O/pct"
check "percentile:0: no output" test -z "$(siblings "$O" pct)"
printf 'sentence\tlabel\na fine film\t 1\nbad\t0 \nfine\t1\n' >"$TMP/spaces.tsv"
printf 'sentence\tlabel\na fine film\t1\nbad\t0\nfine\t1\n' >"$TMP/nospaces.tsv"
a=$("$QBERT" eval "$M" --data "$TMP/spaces.tsv" --json 2>&1 | $PY -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
b=$("$QBERT" eval "$M" --data "$TMP/nospaces.tsv" --json 2>&1 | $PY -c 'import json,sys; print(json.load(sys.stdin)["accuracy"])')
check "TSV labels: spaces before and after read alike ($a, $b)" test -n "$a" -a "$a" = "$b"
printf 'sentence\tlabel\na fine film\t+1\n' >"$TMP/plus.tsv"
expect_error "TSV label +1 is not an id" "plus.tsv:2: label '\+1'" "$QBERT" eval "$M" --data "$TMP/plus.tsv"

# safetensors rebuilt with tensors replaced, tiled exactly (no numpy)
rebuild() { # rebuild SRC_DIR DST_DIR PYTHON (over `t`: name -> [dtype, shape, bytes], and `c`: config)
  mkdir -p "$2"
  for f in vocab.txt tokenizer_config.json; do ln -sf "$1/$f" "$2/$f"; done
  $PY - "$1" "$2" "$3" <<'PYEOF'
import json, struct, sys, array
src, dst, code = sys.argv[1:4]
data = open(src + "/model.safetensors", "rb").read()
n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n]); h.pop("__metadata__", None)
t = {k: [v["dtype"], v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]] for k, v in h.items()}
c = json.load(open(src + "/config.json"))
exec(code)
hdr, blob = {}, b""
for k, (dt, shape, b) in t.items():
    hdr[k] = {"dtype": dt, "shape": shape, "data_offsets": [len(blob), len(blob) + len(b)]}
    blob += b
hb = json.dumps(hdr).encode(); hb += b" " * (-len(hb) % 8)
open(dst + "/model.safetensors", "wb").write(struct.pack("<Q", len(hb)) + hb + blob)
json.dump(c, open(dst + "/config.json", "w"))
PYEOF
}

# a reference model with 128 positions, under an eval that runs 512
rebuild "$M" "$TMP/short" '
w = t["bert.embeddings.position_embeddings.weight"]
w[2] = w[2][:128 * w[1][1] * 4]; w[1] = [128, w[1][1]]
c["max_position_embeddings"] = 128'
expect_error "reference model too short" "512 exceeds the 128 positions of the reference model .*short" \
  "$QBERT" eval "$M" --data "$TMP/two.tsv" --reference "$TMP/short"

# 300 labels: the probability is a softmax over all of them
rebuild "$M" "$TMP/many" '
hid = t["classifier.weight"][1][1]
t["classifier.weight"] = ["F32", [300, hid], bytes(300 * hid * 4)]
bias = array.array("f", [0.0] * 300); bias[299] = 5.0
t["classifier.bias"] = ["F32", [300], bias.tobytes()]
c["id2label"] = {str(i): "L%d" % i for i in range(300)}
c["label2id"] = {"L%d" % i: i for i in range(300)}'
"$QBERT" predict "$TMP/many" "anything at all" >"$TMP/many.out" 2>"$TMP/many.err"
want=$($PY -c 'import math; print("%.4f" % (math.exp(5) / (math.exp(5) + 299)))')
check "300 labels: label and probability over all 300 ($(head -c 60 "$TMP/many.out"$(: )) want $want)" \
  test "$(cut -f1,2 "$TMP/many.out")" = "L299	$want"
# ---- outputs that would destroy something, and lost standard output --------
W=$TMP/writable; cp -r "$M" "$W"
expect_error "export over the model's weights" "refusing to overwrite the input model's model.safetensors" \
  "$QBERT" export "$W" -o "$W/model.safetensors"
expect_error "embed over the model's vocab.txt" "refusing to overwrite the input model's vocab.txt" \
  "$QBERT" embed "$W" hi -o "$W/vocab.txt"
check "... the model still loads" "$QBERT" info "$W" >/dev/null 2>&1
mkfifo "$TMP/fifo"
expect_error "embed over a FIFO" "fifo: is a FIFO, not a file" "$QBERT" embed "$M" hi -o "$TMP/fifo"
check "... the FIFO stays one" test -p "$TMP/fifo"
expect_error "calibration texts from a FIFO (hashed, then read)" "fifo: is a FIFO, not a file" \
  "$QBERT" calibrate "$M" --calib "$TMP/fifo" -o "$TMP/stats.json"
if [ -w /dev/full ]; then
  expect_error "predict into a full disk" "standard output: " \
    bash -c '"$0" predict "$1" "a fine film" --json >/dev/full' "$QBERT" "$M"
  "$QBERT" info "$M" >/dev/full 2>"$TMP/err"
  check "info into a full disk: exit 1, said once" test $? -eq 1 -a "$(grep -c 'standard output' "$TMP/err")" -eq 1
fi
for cmd in predict embed; do
  expect_error "$cmd --input without line ends" "/dev/zero:1: line longer than 64 MiB" "$QBERT" $cmd "$M" --input /dev/zero
done
mkdir -p "$TMP/mnt-out/mnt"
if mount -t tmpfs -o size=1m tmpfs "$TMP/mnt-out/mnt" 2>/dev/null; then
  echo keep >"$TMP/mnt-out/mnt/keep"
  fp16 -o "$TMP/mnt-out" --force >/dev/null 2>&1
  check "--force leaves another file system's files alone" test "$(cat "$TMP"/mnt-out*/mnt/keep 2>/dev/null)" = keep
  umount "$TMP"/mnt-out*/mnt
else
  echo "  (no tmpfs mount here: the mount-point check is skipped)"
fi
printf 'a fine film\n' >"$TMP/one.txt"
"$QBERT" predict "$M" --input - <&- >"$TMP/out" 2>"$TMP/err"
check "closed stdin reads as empty, not as the model file" test $? -eq 0 -a ! -s "$TMP/out" -a ! -s "$TMP/err"
finish
