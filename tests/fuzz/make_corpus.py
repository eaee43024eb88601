#!/usr/bin/env python3
"""Writes the fuzz seed corpora, tests/fuzz/corpus/<parser>/, from real files.

    tests/fuzz/make_corpus.py [--shared DIR] [--qbert BIN] [--fuzz-build DIR]

Sources: the test models (tests/data), the shared models and a handful of
lines of each shared dataset (--shared, default ../shared beside the
repository), quantized copies of the tiny test model and its calibration
statistics (--qbert, a built qbert), a training state (--fuzz-build, a
QB_FUZZ build: fuzz_train_state writes one).  Each file is kept under
64 KB: safetensors seeds are the tiny models or a real header alone,
vocabularies and datasets are cut to their first lines, the SentencePiece
seeds are the first pieces of the real model with a small hand-built
charsmap, and calibration histograms are merged down to 64 bins.  Existing
seed files of the same name are overwritten; nothing else is removed.
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
LIMIT = 64 * 1024
TINY = ["tiny-bert-seq", "tiny-albert-seq", "tiny-bert-token"]


def put(parser, name, data):
    if isinstance(data, str):
        data = data.encode()
    assert len(data) < LIMIT, (parser, name, len(data))
    d = os.path.join(CORPUS, parser)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def read(path, limit=None):
    with open(path, "rb") as f:
        return f.read() if limit is None else f.read(limit)


def head_lines(path, n, max_bytes=16 * 1024):
    out = []
    with open(path, "rb") as f:
        for line in f:
            if len(out) >= n or sum(map(len, out)) + len(line) > max_bytes:
                break
            out.append(line)
    return b"".join(out)


# ---- protobuf (spiece.model) ------------------------------------------------

def varint(d, i):
    x = s = 0
    while True:
        b = d[i]
        i += 1
        x |= (b & 0x7F) << s
        s += 7
        if not b & 0x80:
            return x, i


def enc_varint(x):
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        out.append(b | (0x80 if x else 0))
        if not x:
            return bytes(out)


def fields(d):
    i = 0
    while i < len(d):
        key, j = varint(d, i)
        f, w = key >> 3, key & 7
        start = j
        if w == 0:
            _, k = varint(d, j)
        elif w == 1:
            k = j + 8
        elif w == 5:
            k = j + 4
        elif w == 2:
            n, start = varint(d, j)
            k = start + n
        else:
            raise ValueError("wire type %d" % w)
        yield f, w, d[i:k], d[start:k]
        i = k


def len_field(f, payload):
    return enc_varint(f << 3 | 2) + enc_varint(len(payload)) + payload


def darts_charsmap(mapping):
    """A darts-clone double array over mapping's UTF-8 keys, in
    sentencepiece's precompiled_charsmap layout: uint32 trie size, the
    units, then the NUL-terminated normalized strings."""
    strings = bytearray()
    values = {}
    for k, v in mapping.items():
        values[k.encode()] = len(strings)
        strings += v.encode() + b"\0"
    trie = {}
    for key in values:
        node = trie
        for c in key:
            node = node.setdefault(c, {})
        node[None] = values[key]
    units = {}

    def free(i):
        return i not in units and i > 0

    def place_child(node, idx):
        labels = sorted(c for c in node if c is not None)
        has_leaf = None in node
        base = 1
        while True:
            slots = [base ^ c for c in labels] + ([base] if has_leaf else [])
            if all(free(s) for s in slots) and len(set(slots)) == len(slots):
                break
            base += 1
        units[idx] |= (idx ^ base) << 10
        if has_leaf:
            units[base] = 0x80000000 | node[None]
        for c in labels:
            units[base ^ c] = c
        for c in labels:
            child = node[c]
            if None in child:
                units[base ^ c] |= 1 << 8
            place_child(child, base ^ c)

    units[0] = 0
    place_child(trie, 0)
    n = max(units) + 1
    arr = b"".join(struct.pack("<I", units.get(i, 0)) for i in range(n))
    return struct.pack("<I", len(arr)) + arr + bytes(strings)


def small_spiece(model, n_pieces, charsmap):
    """The first n_pieces pieces of model (the <unk> among them), its
    trainer_spec, and its normalizer_spec with charsmap in place of the
    real one (None: no charsmap, the identity)."""
    out = bytearray()
    kept = 0
    for f, w, raw, payload in fields(model):
        if f == 1:
            if kept < n_pieces:
                out += raw
                kept += 1
        elif f == 3:
            norm = bytearray()
            for nf, nw, nraw, _ in fields(payload):
                if nf != 2:
                    norm += nraw
            if charsmap is not None:
                norm = len_field(2, charsmap) + norm
            out += len_field(3, bytes(norm))
        else:
            out += raw
    return bytes(out)


# ---- calibration statistics -----------------------------------------------

def shrink_stats(text, bins=64):
    doc = json.loads(text)
    for group in ("linears", "outputs"):
        for st in doc.get(group, {}).values():
            b = st["bins"]
            k = len(b) // bins
            st["bins"] = [sum(b[i * k:(i + 1) * k]) for i in range(bins)]
    doc["model"] = "tests/data/tiny-bert-seq"
    return json.dumps(doc, separators=(",", ":"))


def tokenizer_json_seeds(shared):
    """tokenizer.json: the real files with their vocabularies cut (ids below
    a bound, the merges among them), the charsmap replaced by a small one."""
    base64 = __import__("base64")
    for name, keep in (("bert-base-uncased", 1200), ("roberta-base", 700), ("albert-base-v2", 400)):
        p = os.path.join(shared, "tokenizers", name, "tokenizer.json")
        if not os.path.exists(p):
            continue
        j = json.load(open(p, encoding="utf-8"))
        m = j["model"]
        if isinstance(m["vocab"], dict):
            m["vocab"] = {k: v for k, v in m["vocab"].items() if v < keep}
        else:
            m["vocab"] = m["vocab"][:keep]
        if "merges" in m:
            merges = []
            for mg in m["merges"]:
                a, b = mg.split(" ") if isinstance(mg, str) else mg
                if a in m["vocab"] and b in m["vocab"] and a + b in m["vocab"]:
                    merges.append(mg)
            m["merges"] = merges
        j["added_tokens"] = [t for t in j["added_tokens"] if t["id"] < keep]
        def small_charsmap(n):
            if isinstance(n, dict):
                if n.get("type") == "Precompiled":
                    n["precompiled_charsmap"] = base64.b64encode(darts_charsmap(
                        {"\uff21": "a", "\u2160": "i", "\u3000": " ", "\u00a0": " ", "\ufb01": "fi"})).decode()
                for v in n.values():
                    small_charsmap(v)
            elif isinstance(n, list):
                for v in n:
                    small_charsmap(v)
        small_charsmap(j["normalizer"])
        put("tokenizer_json", name + "-cut.json", json.dumps(j, ensure_ascii=False))
    put("tokenizer_json", "bpe-tiny.json", json.dumps({
        "added_tokens": [{"id": 7, "content": "<m>", "lstrip": True, "special": True}],
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "\u0120": 3, "ab": 4, "bc": 5, "\u0120a": 6, "<m>": 7},
                  "merges": ["b c", "a b", "\u0120 a"]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True},
        "post_processor": {"type": "RobertaProcessing", "cls": ["a", 0], "sep": ["b", 1]},
        "truncation": {"max_length": 6, "strategy": "LongestFirst", "stride": 0, "direction": "Right"}}))
    put("tokenizer_json", "wordpiece-pipeline.json", json.dumps({
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "BertNormalizer", "lowercase": True}, {"type": "NFD"},
                                                           {"type": "StripAccents"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Whitespace"}, {"type": "Punctuation", "behavior": "MergedWithNext"},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "Contiguous", "invert": False},
            {"type": "Digits", "individual_digits": True}, {"type": "BertPreTokenizer"}]},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                  "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3, "##b": 4, "-": 5, "1": 6, "##1": 7, "hello": 8, ",": 9}},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]}}))
    put("tokenizer_json", "bpe-pipeline.json", json.dumps({
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Digits"}, {"type": "ByteLevel", "use_regex": True}]},
        "model": {"type": "BPE", "unk_token": None, "vocab": {"a": 0, "b": 1, "\u0120": 2, "ab": 3, "\u0120ab": 4},
                  "merges": [["a", "b"], ["\u0120", "ab"]]}}))
    put("tokenizer_json", "unigram-tiny.json", json.dumps({
        "added_tokens": [{"id": 0, "content": "[X]", "single_word": True, "rstrip": True}],
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Replace", "pattern": {"String": "``"}, "content": "\""},
                                                           {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip"},
                                                           {"type": "Prepend", "prepend": "_"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                          {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}]},
        "model": {"type": "Unigram", "unk_id": 1, "vocab": [["[X]", 0], ["<unk>", 0], ["\u2581", -2], ["a", -3], ["ab", -4],
                                                             ["\u2581a", -1.5], ["b", -3.5]]},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[X]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"[X]": {"id": "[X]", "ids": [0], "tokens": ["[X]"]}}}}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    ap.add_argument("--qbert", help="a built qbert, for quantized models and calibration statistics")
    ap.add_argument("--fuzz-build", help="a QB_FUZZ build directory, for a training state")
    a = ap.parse_args()
    models = os.path.join(a.shared, "models")
    data = os.path.join(a.shared, "data")
    tiny = {m: os.path.join(ROOT, "tests", "data", m) for m in TINY}
    shared = sorted(d for d in os.listdir(models) if os.path.isdir(os.path.join(models, d))) \
        if os.path.isdir(models) else []

    # config.json, tokenizer_config.json, the JSON reader
    for m, d in tiny.items():
        cfg = read(os.path.join(d, "config.json"))
        put("config", m + ".json", cfg)
        put("json", m + ".json", cfg)
        for i, mm in enumerate(TINY):
            if mm == m:
                put("model_dir", m, bytes([i]) + cfg)
    for m in shared:
        for f in ("config.json", "tokenizer_config.json", "training.json"):
            p = os.path.join(models, m, f)
            if os.path.exists(p):
                put("json", "%s-%s" % (m, f), read(p))
                if f == "config.json":
                    put("config", m + ".json", read(p))
    tc = os.path.join(models, "albert-mini-sst2", "tokenizer_config.json")
    if os.path.exists(tc):
        put("model_dir", "tiny-albert-seq-tokcfg",
            bytes([1]) + read(os.path.join(tiny["tiny-albert-seq"], "config.json")) + b"\n\0\n" + read(tc))
    put("model_dir", "tiny-bert-seq-tokcfg",
        bytes([0]) + read(os.path.join(tiny["tiny-bert-seq"], "config.json")) +
        b'\n\0\n{"do_lower_case": false, "strip_accents": true, "tokenize_chinese_chars": false}')
    # a sentence-transformers layout: prompts, modules, pooling
    st_layout = [{"do_lower_case": True},
                 {"prompts": {"query": "query: ", "doc": ""}, "default_prompt_name": "query"},
                 [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                  {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                  {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
                 {"word_embedding_dimension": 8, "pooling_mode_mean_tokens": True, "include_prompt": True}]
    put("model_dir", "tiny-bert-seq-sentence-transformers",
        bytes([0]) + b"\n\0\n".join([read(os.path.join(tiny["tiny-bert-seq"], "config.json"))] +
                                      [json.dumps(x).encode() for x in st_layout]))
    put("json", "escapes.json", r'{"a": "\u00e9\ud83d\ude00\ud800x\u0000\"\\\/\b\f\n\r\t", "n": [-0.5e+3, 0, 1E9, '
        r'12345678901234567890, true, false, null], "o": {"": {}, "x": [[[]]]}}')
    put("json", "array.json", "[1, [2, [3, {\"k\": \"v\"}]], \"s\"]")

    # safetensors: the tiny models whole, real headers alone
    for m, d in tiny.items():
        put("safetensors", m + ".safetensors", read(os.path.join(d, "model.safetensors")))
    for m in shared:
        p = os.path.join(models, m, "model.safetensors")
        head = read(p, 8)
        n = struct.unpack("<Q", head)[0]
        if 8 + n < LIMIT:
            put("safetensors", m + "-header.safetensors", read(p, 8 + n))

    # vocab.txt, WordPiece texts
    for m, d in tiny.items():
        put("vocab", m + ".txt", read(os.path.join(d, "vocab.txt")))
    p = os.path.join(models, "bert-mini-sst2", "vocab.txt")
    if os.path.exists(p):
        put("vocab", "bert-mini-head.txt", head_lines(p, 2000))
    put("vocab", "crlf.txt", b"[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nhello\r\n##lo\r\n,\r\n")
    texts = [b"Hello, World! [CLS] unaffable na\xc3\xafve \xe4\xb8\xad\xe6\x96\x87 [MASK]",
             b"caf\xc3\xa9 \xc3\x85ngstr\xc3\xb6m\x1f second segment with a pair",
             b"bad utf8 \xff\xfe \xc3\x28 \xe2\x82 \xf0\x9f\x98 end",
             b"\xef\xbc\xa1\xef\xbc\xa2 \xe2\x85\xa0 \xe3\x80\x80 tabs\tand\nnewlines\r\n\x00nul",
             b"   leading and  multiple   spaces   "]
    sst2 = os.path.join(data, "sst2", "dev.tsv")
    if os.path.exists(sst2):
        for i, line in enumerate(head_lines(sst2, 6).splitlines()[1:]):
            texts.append(line.split(b"\t")[0])
    for i, t in enumerate(texts):
        put("wordpiece", "text%d" % i, bytes([i % 12]) + t)
        put("sentencepiece", "text%d" % i, bytes([i % 8]) + t)

    # spiece.model: the real pieces, cut, with a small charsmap
    p = os.path.join(models, "albert-mini-sst2", "spiece.model")
    if os.path.exists(p):
        model = read(p)
        cm = darts_charsmap({"\uff21": "A", "\uff22": "B", "\u2160": "I", "\u3000": " ", "\u00a0": " ",
                             "\ufb01": "fi", "\u2460": "1"})
        put("spiece_model", "small-unigram.model", small_spiece(model, 1200, cm))
        put("spiece_model", "no-charsmap.model", small_spiece(model, 300, None))

    # datasets: a handful of lines
    if os.path.exists(sst2):
        put("dataset_tsv", "sst2", b"\x00" + head_lines(sst2, 8))
        rows = head_lines(sst2, 8).splitlines()[1:]
        jl = b"".join(json.dumps({"text": r.split(b"\t")[0].decode(), "label": int(r.split(b"\t")[1])}).encode()
                      + b"\n" for r in rows[:4])
        put("dataset_jsonl", "sst2.jsonl", jl)
    imdb = os.path.join(data, "imdb", "test-2000.tsv")
    if os.path.exists(imdb):
        lines = head_lines(imdb, 3, 8 * 1024).splitlines(keepends=True)
        put("dataset_tsv", "imdb", b"\x11" + b"".join(l[:600] + (b"<br /><br />x\n" if not l.startswith(b"label") else b"")
                                              for l in lines))
    put("dataset_tsv", "pairs", b"\x15text\tpair\tlabel\nA man.\tA person.\tentailment\r\nB\tC\t1\n\nlast\tno\tnewline")
    conll = os.path.join(data, "conll2003", "train.txt")
    if os.path.exists(conll):
        put("dataset_conll", "conll", head_lines(conll, 24))
    put("dataset_conll", "docstart", b"-DOCSTART- -X- -X- O\n\nEU\tNNP B-NP B-ORG\n  rejects VBZ B-VP O  \n\n\n")
    put("dataset_jsonl", "fields.jsonl",
        b'{"text": "a\\u0000b \\ud83d\\ude00", "text_pair": null, "label": "pos"}\n'
        b'  {"text": "x", "text_pair": "y", "label": 3}\r\n\n{"label": null, "text": ""}\n')

    # precision maps over the tiny model's linears
    lin = "bert.encoder.layer.%d.%s"
    put("precision_map", "names.json", json.dumps({lin % (0, "attention.self.query"): "fp32",
                                                   lin % (1, "output.dense"): "int8-dynamic",
                                                   "classifier": "fp16"}))
    put("precision_map", "globs.json", json.dumps({"bert.encoder.layer.*.intermediate.dense": "int4",
                                                   "*attention*": "bf16", "*": "int8"}))
    put("precision_map", "static.json", json.dumps({"*.query": "int8-static", "*.key": "kmeans4",
                                                    "*.value": "int3-weight-only", "*.dense": "ternary"}))

    # server request bodies: a byte for endpoint + 9 x model (fuzz_serve_request.c), then the body
    embed, predict, rerank, tokenize, decode, embed_all, similarity, openai, info = range(9)
    bare, classifier, cross = 0, 9, 18
    for name, first, body in [
            ("embed", embed + bare, {"inputs": "a fine film", "normalize": True}),
            ("embed-list", embed + bare, {"inputs": ["good", "Very BAD!", "\u00e9t\u00e9"], "truncate": True}),
            ("openai-base64", openai + bare, {"input": ["a", "b c"], "model": "m", "encoding_format": "base64"}),
            ("openai-float", openai + bare, {"input": "one", "encoding_format": "float", "user": "u"}),
            ("predict", predict + classifier, {"inputs": "the movie was great", "raw_scores": False}),
            ("predict-pairs", predict + classifier, {"inputs": [["a man", "a person"], "alone", ["x", "y"]]}),
            ("predict-raw", predict + cross, {"inputs": ["query", "text"], "raw_scores": True}),
            ("rerank", rerank + cross, {"query": "what", "texts": ["this", "that one", "this"], "return_text": True}),
            ("tokenize", tokenize + classifier, {"inputs": ["hello, world!", "[CLS] x [SEP]"]}),
            ("decode", decode + bare, {"ids": [[2, 5, 3], [0, 1]], "skip_special_tokens": False}),
            ("embed-all", embed_all + bare, {"inputs": ["a fine film", "x"], "truncate": True}),
            ("similarity", similarity + bare,
             {"inputs": {"source_sentence": "a film", "sentences": ["a movie", "", "a film"]},
              "parameters": {"truncate": True}}),
            ("long", embed + bare, {"inputs": " ".join(["word"] * 40), "truncate": False}),
            ("embed-prompt", embed + bare, {"inputs": ["a film", ""], "prompt_name": "query"}),
            ("tokenize-prompt", tokenize + bare, {"inputs": "x", "prompt_name": "doc"}),
            ("wrong-model", embed + classifier, {"inputs": "x"})]:
        put("serve_request", name, bytes([first]) + json.dumps(body).encode())
    for name, model in ("bare", bare), ("classifier", classifier), ("cross", cross):
        put("serve_request", "info-" + name, bytes([info + model]))
    put("serve_request", "not-json", bytes([predict + classifier]) + b'{"inputs": ["a", ')

    # quantized tiny models and calibration statistics
    if a.qbert:
        with tempfile.TemporaryDirectory() as tmp:
            src = tiny["tiny-bert-seq"]
            calib = os.path.join(tmp, "calib.tsv")
            with open(calib, "wb") as f:
                f.write(head_lines(sst2, 20) if os.path.exists(sst2) else b"sentence\tlabel\nok .\t1\n")
            stats = os.path.join(tmp, "stats.json")
            run = lambda *args: subprocess.run([a.qbert, *args], check=True, stdout=subprocess.DEVNULL)
            run("calibrate", src, "--calib", calib, "-o", stats)
            put("calib", "tiny-bert-seq.json", shrink_stats(read(stats)))
            variants = {"dynamic": ["--method", "dynamic"],
                        "static": ["--method", "static", "--calib-stats", stats, "--int8-attention"],
                        "weight-only4": ["--method", "weight-only", "--bits", "4"],
                        "fp16": ["--method", "fp16"],
                        "dynamic4-emb": ["--method", "dynamic", "--bits", "4", "--quantize-embeddings"]}
            # the binders of every linear format, for fuzz_quantized_model
            formats = {"bf16": ["--method", "bf16"],
                       "dynamic3-zp": ["--method", "dynamic", "--bits", "3", "--weight-zero-point"],
                       "dynamic2-emb2": ["--method", "dynamic", "--bits", "2", "--quantize-embeddings"],
                       "ternary": ["--method", "dynamic", "--bits", "ternary", "--group-size", "channel"],
                       "weight-only4-zp": ["--method", "weight-only", "--bits", "4", "--group-size", "4",
                                           "--weight-zero-point"],
                       "kmeans3": ["--method", "weight-only", "--bits", "3", "--codebook", "kmeans"],
                       "mixed": ["--method", "dynamic", "--precision-map", os.path.join(tmp, "map.json")]}
            with open(os.path.join(tmp, "map.json"), "w") as f:
                json.dump({"*.query": "int4", "*.key": "kmeans2", "*.value": "ternary-weight-only",
                           "*.intermediate.dense": "fp16", "*.output.dense": "int8-dynamic"}, f)
            for name, args in list(variants.items()) + list(formats.items()):
                out = os.path.join(tmp, name)
                run("quantize", src, "-o", out, *args)
                cfg = read(os.path.join(out, "config.json"))
                weights = read(os.path.join(out, "model.safetensors"))
                put("quantized_model", name, cfg + b"\n\0\n" + weights)
                if name in formats:
                    continue
                put("config", "quantized-%s.json" % name, cfg)
                put("json", "quantized-%s.json" % name, cfg)
                put("safetensors", "quantized-%s.safetensors" % name, weights)
    tokenizer_json_seeds(a.shared)

    if a.fuzz_build:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "state.safetensors")
            env = dict(os.environ, QB_FUZZ_WRITE_SEED=out)
            subprocess.run([os.path.join(a.fuzz_build, "fuzz_train_state")], env=env, check=True)
            put("train_state", "tiny-bert-seq.state", read(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
