"""The malformed-input corpus through the binding: every broken model
directory and dataset tests/test_bad_input.sh made must raise QbertError
(or load and run, where the CLI accepts it too), never crash the process.
usage: bad_input.py GOOD_MODEL CORPUS_DIR"""
import os
import sys

import qbert

good, corpus = sys.argv[1], sys.argv[2]
failed = 0


def expect(name, fn):
    global failed
    print("case", name, flush=True)  # the last one named is the one that crashed
    try:
        fn()
    except qbert.QbertError as e:
        if not str(e) or "\n" in str(e):
            failed += 1
            print("FAIL %s: not a one-line message: %r" % (name, str(e)))
    except Exception as e:  # anything but QbertError is a binding bug
        failed += 1
        print("FAIL %s: %r" % (name, e))


def use_model(d):
    with qbert.Model(d) as m:
        m.tokenize("a test")
        if m.info["task"] != "none":
            m.predict(["a test", "another one"])
        m.embed(["a test"])


dirs = sorted(e.path for e in os.scandir(corpus) if e.is_dir() and not e.name.startswith("."))
for d in dirs:
    expect(os.path.basename(d), lambda: use_model(d))
data = sorted(e.path for e in os.scandir(corpus) if e.is_file() and e.name.endswith((".tsv", ".txt", ".jsonl")))
for f in data + [os.path.join(corpus, "nope.tsv"), os.path.join(corpus, "..")]:
    expect(f, lambda: qbert.evaluate(good, f, limit=5))
with qbert.Model(good) as m:
    for f in data:
        with open(f, "rb") as fh:
            lines = fh.read().splitlines()
        expect(f + " (predict)", lambda: m.predict(lines or [b""]))
print("bad_input.py: %d of %d cases failed" % (failed, len(dirs) + 2 * len(data) + 2))
sys.exit(1 if failed else 0)
