// Writes offsets.jsonl: the token ids, offsets and decoded texts Hugging
// Face's tokenizers (Rust, through its Node binding, as
// ../shared/tools/rs_tokenize.cjs loads it) gives for the shared
// tokenizer.json files, for tests/test_tokenizer_json.c.
// Offsets are bytes, as TEI's /tokenize reports them; the binding gives
// characters, converted here.
//
//   node tests/data/tokenizer_json/make_offsets.cjs [SHARED_DIR [TEXTS.json OUT.jsonl]]
//
// Each line: {"tokenizer", "text", "text_pair", "ids", "special", "offsets": [[start, end], ...],
// "decoded": decode(ids, skip special tokens), "decoded_all": decode(ids, keep them)}.
const fs = require("fs");
const path = require("path");
const here = __dirname;
const shared = process.argv[2] || path.join(here, "../../../../shared");
const root = process.env.HFTOK_PATH ||
    ((process.env.PEERS_WORK || (process.env.HOME + "/.cache/qbert-peers")) + "/hftok/node_modules");
const { Tokenizer } = require(require.resolve("tokenizers", { paths: [root] }));
const NAMES = ["bert-base-uncased", "all-MiniLM-L6-v2", "albert-base-v2", "roberta-base"];
const TEXTS = [
    "Hello, World! state-of-the-art 12,345.67 don't",
    "  Caf\u00e9 na\u00efve  \u00c5ngstr\u00f6m\tTABS\nand\r\nnewlines  ",
    "\uff21\uff22\uff23 \u2160 \ufb01ne ''quoted'' ``this'' \u4e2d\u6587\u5b57 \u{1F600}!",
    "A--B...C!!?? x_y_z 2024-01-02 \u0661\u0662\u0663 [MASK] here",
    "hello [MASK] there <mask> and [SEP] too",
    "Korean \uac00\ub098\ub2e4 and \u00bd cup, \u2167 kings",
    "decomposed e\u0301 and i\u0307 and \u0130stanbul \u1e9e",
    "emoji \u{1F44D}\u{1F3FD} x\u{1F600}y unknown\u2603snow",
    "unbelievably antidisestablishmentarianism tokenization",
    "it's 4pm--OK? (yes) 'single' \"double\" #hash @at $5.00 100%",
    " leading and trailing spaces ",
    "a",
    "   ",
    "two\u0085words and\u00a0nbsp\u200bzwsp",
    "",
];
const PAIRS = [["the first part, here", "and the 2nd part!"], ["Caf\u00e9?", "na\u00efve \u4e2d\u6587"]];

function byteOffsets(text, offs) {
    const cps = Array.from(text), at = [0];
    for (const c of cps) at.push(at[at.length - 1] + Buffer.byteLength(c, "utf8"));
    return offs.map(([s, e]) => [at[s], at[e]]);
}

(async () => {
    let items = TEXTS.map((t) => [t, null]).concat(PAIRS);
    let out = path.join(here, "offsets.jsonl"), names = NAMES;
    if (process.argv[3]) {
        items = JSON.parse(fs.readFileSync(process.argv[3], "utf8")).map((t) => [t, null]);
        out = process.argv[4];
    }
    const lines = [];
    for (const name of names) {
        const tok = Tokenizer.fromFile(path.join(shared, "tokenizers", name, "tokenizer.json"));
        tok.disableTruncation();
        tok.disablePadding();
        for (const [text, pair] of items) {
            const e = await tok.encode(text, pair, { addSpecialTokens: true });
            const offs = e.getOffsets(), special = e.getSpecialTokensMask();
            // a pair's offsets are in the pair's own text
            const a = await tok.encode(text, null, { addSpecialTokens: false });
            const na = a.getIds().length;
            let k = 0;
            const bytes = offs.map((o, i) => {
                if (special[i]) return [0, 0];
                const inPair = pair !== null && k++ >= na;
                return byteOffsets(inPair ? pair : text, [o])[0];
            });
            const decoded = await tok.decode(e.getIds(), true);
            const decoded_all = await tok.decode(e.getIds(), false);
            lines.push(JSON.stringify({ tokenizer: name, text, text_pair: pair, ids: e.getIds(),
                                        special, offsets: bytes, decoded, decoded_all }));
        }
    }
    fs.writeFileSync(out, lines.join("\n") + "\n");
    console.error(`make_offsets: ${lines.length} lines -> ${out}`);
})().catch((e) => { console.error(e); process.exit(1); });
