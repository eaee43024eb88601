#!/usr/bin/env python3
"""Writes cases.jsonl: the ids Hugging Face's tokenizers library (Rust, via
../shared/tools/rs_tokenize.cjs and npm tokenizers 0.13.3) gives for the
shared tokenizer.json files with their normalizer, pre-tokenizer or
post-processor replaced by other components, for tests/test_tokenizer_json.c.

    tests/data/tokenizer_json/make_cases.py [--shared DIR]

Each line: {"base": NAME, "set": {KEY: COMPONENT, ...}, "text", "text_pair",
"input_ids", "token_type_ids"}.
"""
import argparse
import json
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

TEXTS = [
    "Hello, World! state-of-the-art 12,345.67 don't",
    "  Caf\u00e9 na\u00efve  \u00c5ngstr\u00f6m\tTABS\nand\r\nnewlines  ",
    "\uff21\uff22\uff23 \u2160 \ufb01ne ''quoted'' ``this'' \u4e2d\u6587\u5b57 \U0001F600!",
    "A--B...C!!?? x_y_z 2024-01-02 \u0661\u0662\u0663 [MASK] here",
    "",
    "   ",
    "it's 4pm--OK? (yes) 'single' \"double\" #hash @at $5.00 100%",
]
PAIRS = [("the first part, here", "and the 2nd part!"), ("", "only pair"), ("x", "")]


def ws(*items):
    return {"type": "Sequence", "pretokenizers": list(items)}


def ns(*items):
    return {"type": "Sequence", "normalizers": list(items)}


def rep(a, b):
    return {"type": "Replace", "pattern": {"String": a}, "content": b}


P = lambda b: {"type": "Punctuation", "behavior": b}
VARIANTS = [
    ("bert-base-uncased", {"normalizer": ns({"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True}, rep("''", '"')),
                           "pre_tokenizer": {"type": "Whitespace"}}),
    ("bert-base-uncased", {"pre_tokenizer": ws({"type": "WhitespaceSplit"}, P("Isolated"), {"type": "Digits", "individual_digits": True})}),
    ("bert-base-uncased", {"normalizer": ns({"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}),
                           "pre_tokenizer": ws(P("MergedWithPrevious"), {"type": "WhitespaceSplit"})}),
    ("bert-base-uncased", {"normalizer": {"type": "Lowercase"},
                           "pre_tokenizer": ws({"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithNext", "invert": False},
                                               {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed", "invert": False},
                                               {"type": "Digits", "individual_digits": False})}),
    ("bert-base-uncased", {"normalizer": ns({"type": "NFKD"}, {"type": "Lowercase"}),
                           "pre_tokenizer": ws({"type": "WhitespaceSplit"}, P("Contiguous"))}),
    ("bert-base-uncased", {"normalizer": ns({"type": "Lowercase"}, {"type": "Prepend", "prepend": "x"}),
                           "pre_tokenizer": ws({"type": "WhitespaceSplit"}, P("Removed"))}),
    ("bert-base-uncased", {"normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": False,
                                          "strip_accents": False, "lowercase": True},
                           "pre_tokenizer": ws({"type": "BertPreTokenizer"}, P("MergedWithNext")),
                           "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}}),
    ("roberta-base", {"normalizer": ns({"type": "NFC"}, {"type": "Lowercase"}),
                      "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True}}),
    ("roberta-base", {"pre_tokenizer": ws({"type": "Digits", "individual_digits": True},
                                          {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True})}),
    ("roberta-base", {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False},
                      "post_processor": {"type": "TemplateProcessing",
                                         "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                                    {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                                         "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                                  {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "</s>", "type_id": 1}}],
                                         "special_tokens": {"<s>": {"id": "<s>", "ids": [0], "tokens": ["<s>"]},
                                                            "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}}),
    ("albert-base-v2", {"normalizer": ns({"type": "NFKC"}, {"type": "Lowercase"}),
                        "pre_tokenizer": ws({"type": "Whitespace"}, {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True})}),
    ("albert-base-v2", {"pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": False}}),
    ("albert-base-v2", {"pre_tokenizer": ws({"type": "WhitespaceSplit"},
                                            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True})}),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    a = ap.parse_args()
    items = [{"text": t, "text_pair": None} for t in TEXTS] + [{"text": x, "text_pair": y} for x, y in PAIRS]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for base, changes in VARIANTS:
            j = json.load(open(os.path.join(a.shared, "tokenizers", base, "tokenizer.json"), encoding="utf-8"))
            j.update(changes)
            with open(os.path.join(tmp, "tokenizer.json"), "w", encoding="utf-8") as f:
                json.dump(j, f, ensure_ascii=False)
            inp, res = os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")
            json.dump(items, open(inp, "w"))
            subprocess.run(["node", os.path.join(a.shared, "tools", "rs_tokenize.cjs"), tmp, inp, res], check=True)
            for it, r in zip(items, json.load(open(res))):
                out.append({"base": base, "set": changes, "text": it["text"], "text_pair": it["text_pair"],
                            "input_ids": r["ids"], "token_type_ids": r["type_ids"]})
    with open(os.path.join(HERE, "cases.jsonl"), "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    print("cases.jsonl: %d cases" % len(out))


if __name__ == "__main__":
    main()
