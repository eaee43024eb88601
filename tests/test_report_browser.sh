#!/usr/bin/env bash
# report.html rendered by headless Chromium: no console errors, and the
# screenshot shows the charts (pixels of the bar and Pareto-front colours).
set -u
. "$(dirname "$0")/lib.sh"

find_chromium() { command -v chromium || command -v chromium-browser || command -v google-chrome || true; }
CHROME=$(find_chromium)
if [ -z "$CHROME" ]; then
  # Install it if we can; the only allowed skip is when that fails.
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
  why=$( { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium; } 2>&1 | tail -1 )
  CHROME=$(find_chromium)
  if [ -z "$CHROME" ]; then echo "skipped: chromium not available ($why)"; exit 77; fi
fi

OUT=$TMP/report
QB_REPORT_OUT=$OUT "${QB_BUILD_DIR:?QB_BUILD_DIR must name the build folder}/test_report" >"$TMP/gen.log" 2>&1
check "test_report wrote the report" test -s "$OUT/report.html"

# The page is tall: a window that shows every chart.
timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$TMP/profile" --enable-logging=stderr --v=0 \
  --screenshot="$TMP/shot.png" --window-size=1200,4000 "file://$OUT/report.html" >"$TMP/chrome.log" 2>&1
check "chromium rendered a screenshot" test -s "$TMP/shot.png"
if grep -E 'CONSOLE|Uncaught|ERR_FILE_NOT_FOUND|net::ERR' "$TMP/chrome.log" >"$TMP/console.txt"; then
  fail "console errors: $(head -3 "$TMP/console.txt")"
else ok; fi

# Decodes the PNG (zlib + the five row filters) and counts pixels close to
# each chart colour: size bars, speedup bars, the Pareto front.
counts=$($PY - "$TMP/shot.png" <<'PYEOF'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
pos, idat, w = 8, b"", 0
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
        bpp = 3 if ctype == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
raw, stride = zlib.decompress(idat), w * bpp
prev, rows, i = bytearray(stride), [], 0
for _ in range(h):
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - bpp] if x >= bpp else 0
        b, c = prev[x], prev[x - bpp] if x >= bpp else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(bytes(line)); prev = line
want = {"size": (0x00, 0x72, 0xB2), "speedup": (0x00, 0x9E, 0x73), "front": (0xC0, 0x39, 0x2B)}
hits = {k: 0 for k in want}
for line in rows:
    for x in range(0, stride, bpp):
        px = line[x:x + 3]
        for k, (r, g, b) in want.items():
            if abs(px[0] - r) < 12 and abs(px[1] - g) < 12 and abs(px[2] - b) < 12: hits[k] += 1
print(hits["size"], hits["speedup"], hits["front"])
PYEOF
)
read -r size_px speedup_px front_px <<<"${counts:-0 0 0}"
echo "chart pixels: size=$size_px speedup=$speedup_px pareto-front=$front_px"
check "size bars drawn ($size_px px)" test "$size_px" -gt 20000
check "speedup bars drawn ($speedup_px px)" test "$speedup_px" -gt 20000
check "Pareto front drawn ($front_px px)" test "$front_px" -gt 300

# The crowded report (12 methods within 2% in latency and accuracy), as the
# browser lays it out: a copy of the page with a script that measures every
# label's rendered box (getBBox, the real font) and writes what it found
# into the DOM, which --dump-dom prints.
CROWD=$OUT/crowded
check "test_report wrote the crowded report" test -s "$CROWD/report.html"
cat >"$TMP/measure.js" <<'JSEOF'
const out = [];
for (const svg of document.querySelectorAll("svg")) {
  const vb = svg.viewBox.baseVal, boxes = [];
  for (const t of svg.querySelectorAll("text.point-label")) boxes.push(t.getBBox());
  for (const c of svg.querySelectorAll("g[data-method] circle")) {
    const b = c.getBBox(); boxes.push({x: b.x, y: b.y, width: b.width, height: b.height, marker: true});
  }
  const labels = boxes.filter(b => !b.marker);
  let overlaps = 0, outside = 0;
  for (const a of labels) {
    if (a.x < 0 || a.y < 0 || a.x + a.width > vb.width || a.y + a.height > vb.height) outside++;
    for (const b of boxes)
      if (a !== b && a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height) overlaps++;
  }
  const fills = [...svg.querySelectorAll("g[data-method] circle")].map(c => c.getAttribute("fill"));
  const strokes = [...svg.querySelectorAll("g[data-method] polygon")].map(p => p.getAttribute("stroke"));
  const repeated = (v) => v.length - new Set(v).size;
  out.push(`labels=${labels.length} overlaps=${overlaps} outside=${outside} ` +
           `repeated=${repeated(fills) + repeated(strokes)}`);
}
const pre = document.createElement("pre"); pre.id = "qb-measure"; pre.textContent = out.join("\n");
document.body.appendChild(pre);
JSEOF
{ sed 's#</body>#<script src="measure.js"></script></body>#' "$CROWD/report.html"; } >"$TMP/crowded.html"
timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$TMP/profile2" --allow-file-access-from-files \
  --dump-dom "file://$TMP/crowded.html" >"$TMP/dom.html" 2>"$TMP/chrome2.log"
measured=$(sed -n '/<pre id="qb-measure">/,/<\/pre>/p' "$TMP/dom.html" | sed 's/<[^>]*>//g')
echo "crowded report, per chart: $measured" | tr '\n' ';'; echo
check "the browser measured the accuracy chart's 12 labels" grep -q "labels=12 " <<<"$measured"
check "no label over another label or a marker" test -z "$(grep -v 'overlaps=0 ' <<<"$measured")"
check "no label outside its chart" test -z "$(grep -v 'outside=0 ' <<<"$measured")"
check "no colour repeated among methods" test -z "$(grep -v 'repeated=0' <<<"$measured")"
timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$TMP/profile3" \
  --screenshot="$TMP/crowded.png" --window-size=1200,4000 "file://$CROWD/report.html" >/dev/null 2>&1
check "chromium rendered the crowded report" test -s "$TMP/crowded.png"
if [ -n "${QB_SCREENSHOT_DIR:-}" ]; then cp "$TMP/shot.png" "$TMP/crowded.png" "$QB_SCREENSHOT_DIR/"; fi
finish
