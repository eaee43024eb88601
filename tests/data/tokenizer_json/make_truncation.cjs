// Writes truncation.jsonl: the ids Hugging Face's tokenizers (Rust, through
// its Node binding, as ../shared/tools/rs_tokenize.cjs loads it) gives for
// texts and pairs truncated LongestFirst to max_length, for
// tests/test_tokenizer_json.c.  Also texts whose lowercase differs between
// Python's str.lower() and Rust's (a word-final capital sigma).
//
//   node tests/data/tokenizer_json/make_truncation.cjs [SHARED_DIR]
//
// Each line: {"tokenizer", "text", "text_pair", "max_length", "ids", "type_ids"}.
const fs = require("fs");
const path = require("path");
const here = __dirname;
const shared = process.argv[2] || path.join(here, "../../../../shared");
const root = process.env.HFTOK_PATH ||
    ((process.env.PEERS_WORK || (process.env.HOME + "/.cache/qbert-peers")) + "/hftok/node_modules");
const { Tokenizer } = require(require.resolve("tokenizers", { paths: [root] }));
const NAMES = ["bert-base-uncased", "albert-base-v2", "roberta-base"];
const words = (w, n) => Array(n).fill(w).join(" ");
const PAIRS = [[words("a", 70), words("b", 80)], [words("b", 80), words("a", 70)], [words("a", 70), words("a", 70)],
               [words("a", 3), words("b", 80)], [words("b", 80), words("a", 3)], [words("a", 9), words("b", 9)],
               [words("a", 40), ""], ["", words("b", 40)]];
const SIGMA = ["\u03a3\u0391\u03a3.", "\u039f\u0394\u039f\u03a3", "\u03a3\u0391\u03a3 \u039f\u0394\u039f\u03a3 \u03a3"];

(async () => {
    const out = [];
    for (const name of NAMES) {
        const tok = Tokenizer.fromFile(path.join(shared, "tokenizers", name, "tokenizer.json"));
        tok.disablePadding();
        for (const max of [16, 17, 128]) {
            tok.setTruncation(max);
            for (const [a, b] of PAIRS) {
                const e = await tok.encode(a, b, { addSpecialTokens: true });
                out.push({ tokenizer: name, text: a, text_pair: b, max_length: max, ids: e.getIds(), type_ids: e.getTypeIds() });
            }
        }
        tok.disableTruncation();
        for (const s of SIGMA) {
            const e = await tok.encode(s, null, { addSpecialTokens: true });
            out.push({ tokenizer: name, text: s, text_pair: null, max_length: 512, ids: e.getIds(), type_ids: e.getTypeIds() });
        }
    }
    fs.writeFileSync(path.join(here, "truncation.jsonl"), out.map((o) => JSON.stringify(o)).join("\n") + "\n");
    console.error(`truncation.jsonl: ${out.length} lines`);
})().catch((e) => { console.error(e); process.exit(1); });
