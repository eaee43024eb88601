"""The Python binding against the CLI: the same model, texts and settings
must give the same bits.  pytest-style (test_* functions); tests/test_python.sh
runs them without pytest.  Environment: QBERT_BIN (the CLI), QB_SOURCE_DIR,
QB_SHARED_DIR, QBERT_LIB (libqbert.so), TMPDIR_QB (scratch)."""
import concurrent.futures
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import threading

import numpy as np

import qbert

SRC = os.environ.get("QB_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.environ.get("QB_SHARED_DIR", os.path.join(SRC, "..", "shared"))
QBERT = os.environ.get("QBERT_BIN", os.path.join(SRC, "build", "qbert"))
MODEL = os.path.join(SRC, "models", "bert-mini-sst2")
SST2 = os.path.join(SHARED, "data", "sst2", "dev.tsv")
CONLL = os.path.join(SHARED, "models", "bert-mini-conll")
SANITIZE = bool(os.environ.get("QB_SANITIZE"))
N = 48 if SANITIZE else 160
TMP = os.environ.get("TMPDIR_QB") or tempfile.mkdtemp()


def cli(*args, stdin=None):
    p = subprocess.run([QBERT, *args], input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout.decode()


def sst2_texts(n=N):
    with open(SST2, encoding="utf-8") as f:
        next(f)
        return [line.rstrip("\n").split("\t")[0] for _, line in zip(range(n), f)]


def test_predict_equals_cli():
    texts = sst2_texts()
    want = [json.loads(line) for line in cli("predict", MODEL, "--input", "-", "--json", "--threads", "2",
                                             stdin="\n".join(texts).encode() + b"\n").splitlines()]
    with qbert.Model(MODEL, threads=2) as m:
        got = m.predict(texts)
    assert got.labels == [w["label"] for w in want]
    assert np.array_equal(got.logits, np.array([w["logits"] for w in want], np.float32))
    assert np.array_equal(got.probabilities, np.array([w["probability"] for w in want], np.float32))


def test_predict_pairs_equals_cli():
    want = json.loads(cli("predict", MODEL, "great acting", "--pair", "a dull plot", "--json"))
    with qbert.Model(MODEL) as m:
        got = m.predict(["great acting"], pairs=["a dull plot"])
    assert got.labels == [want["label"]] and got.logits[0].tolist() == np.float32(want["logits"]).tolist()


def test_tokenize_equals_cli():
    texts = sst2_texts(40)
    want = [json.loads(line) for line in cli("predict", MODEL, *texts, "--json").splitlines()]
    with qbert.Model(MODEL) as m:
        for t, w in zip(texts, want):
            e = m.tokenize(t)
            assert e["input_ids"] == w["input_ids"] and e["token_type_ids"] == w["token_type_ids"]
            assert e["tokens"][0] == "[CLS]" and e["tokens"][-1] == "[SEP]"


def test_offsets_and_decode_as_tokenizers():
    """tests/data/tokenizer_json/offsets.jsonl: Hugging Face tokenizers' own
    offsets (bytes; characters for str input) and decoded texts under
    bert-base-uncased, whose vocab.txt the bundled model has."""
    path = os.path.join(SRC, "tests", "data", "tokenizer_json", "offsets.jsonl")
    with open(path, encoding="utf-8") as f:
        lines = [j for j in map(json.loads, f) if j["tokenizer"] == "bert-base-uncased"]
    assert len(lines) > 10
    with qbert.Model(MODEL) as m:
        for j in lines:
            text, pair = j["text"], j["text_pair"]
            e = m.tokenize(text, pair)
            assert e["input_ids"] == j["ids"], text
            seg = [text.encode(), (pair or "").encode()]
            chars = [(0, 0) if sp else tuple(len(seg[t][:o].decode()) for o in (a, b))
                     for (a, b), sp, t in zip(j["offsets"], j["special"], e["token_type_ids"])]
            assert e["offset_mapping"] == chars, text
            raw = m.tokenize(text.encode(), None if pair is None else pair.encode())
            assert raw["offset_mapping"] == [tuple(o) for o in j["offsets"]], text
            assert m.decode(j["ids"]) == j["decoded"], text
            assert m.decode(j["ids"], skip_special_tokens=False) == j["decoded_all"], text
        for bad in (10 ** 8, 2 ** 40, -2 ** 40 - 1):  # 2 ** 40 wrapped to 0 and decoded as ''
            try:
                m.decode([101, bad])
                assert False, "id %d decoded" % bad
            except qbert.QbertError as err:
                assert "past the vocabulary" in str(err)


def test_embed_equals_cli():
    texts = sst2_texts(70)
    want = [json.loads(line)["embedding"] for line in
            cli("embed", MODEL, "--input", "-", "--pooling", "mean", "--normalize",
                stdin="\n".join(texts).encode() + b"\n").splitlines()]
    with qbert.Model(MODEL) as m:
        got = m.embed(texts, pooling="mean", normalize=True)
    assert got.dtype == np.float32 and got.shape == (70, 256)
    assert np.array_equal(got, np.array(want, np.float32))


def test_embed_prompts():
    """A prompt embeds as the text with the prompt written before it."""
    d = os.path.join(TMP, "prompted")
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(MODEL):
        if not os.path.exists(os.path.join(d, f)):
            os.symlink(os.path.join(os.path.abspath(MODEL), f), os.path.join(d, f))
    with open(os.path.join(d, "config_sentence_transformers.json"), "w") as f:
        json.dump({"prompts": {"query": "query: ", "doc": ""}, "default_prompt_name": "query"}, f)
    texts = ["what is it", "a gripping film"]
    with qbert.Model(d) as m:
        prefixed = m.embed(["query: " + t for t in texts], no_prompt=True)
        assert np.array_equal(m.embed(texts), prefixed)
        assert np.array_equal(m.embed(texts, prompt_name="query"), prefixed)
        assert np.array_equal(m.embed(texts, prompt_name="doc"), m.embed(texts, no_prompt=True))
        assert not np.array_equal(m.embed(texts, prompt_name="doc"), prefixed)
        try:
            m.embed(texts, prompt_name="passage")
            assert False, "an unknown prompt name embedded"
        except qbert.QbertError as err:
            assert 'no prompt named "passage"' in str(err)


def test_token_model_equals_cli():
    if not os.path.isdir(CONLL):
        return
    texts = ["EU rejects German call to boycott British lamb.", "Peter Blackburn lives in Brussels"]
    pair = "Ms. Müller visited Paris"
    with qbert.Model(CONLL) as m:
        for extra, pairs in (((), None), (("--pair", pair), [pair] * 2)):
            want = [json.loads(line) for line in cli("predict", CONLL, *texts, *extra, "--json").splitlines()]
            got = m.predict(texts, pairs=pairs)
            for k, w in enumerate(want):
                assert got.words[k] == w["words"] and got.labels[k] == w["tags"], (got.words[k], w)
                assert np.array_equal(got.logits[k], np.array(w["token_logits"], np.float32))
            want = [json.loads(line) for line in
                    cli("predict", CONLL, *texts, *extra, "--json", "--aggregate", "simple").splitlines()]
            got = m.predict(texts, pairs=pairs, aggregate="simple")
            assert [digits9(e) for e in got.entities] == [w["entities"] for w in want], (got.entities, want)
            assert any(got.entities)


def multi_label_model():
    """bert-mini-sst2 read as problem_type multi_label_classification: its
    scores are a sigmoid per label."""
    d = os.path.join(TMP, "multi-label")
    if not os.path.isdir(d):
        os.makedirs(d)
        for f in ("model.safetensors", "vocab.txt", "tokenizer_config.json"):
            os.symlink(os.path.abspath(os.path.join(MODEL, f)), os.path.join(d, f))
        with open(os.path.join(MODEL, "config.json")) as f:
            config = json.load(f)
        config["problem_type"] = "multi_label_classification"
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
    return d


def test_scores_equal_cli():
    texts = sst2_texts(20)
    for model, function in ((MODEL, "softmax"), (multi_label_model(), "sigmoid")):
        want = [json.loads(line) for line in cli("predict", model, *texts, "--json").splitlines()]
        with qbert.Model(model) as m:
            got = m.predict(texts)
            assert m.info["function_to_apply"] == want[0]["function_to_apply"] == function
        assert got.labels == [w["label"] for w in want]
        assert np.array_equal(got.scores, np.array([w["scores"] for w in want], np.float32))
        assert np.array_equal(got.probabilities, np.array([w["probability"] for w in want], np.float32))
        sums = got.scores.astype(np.float64).sum(axis=1)
        assert np.allclose(sums, 1, atol=1e-6) == (function == "softmax"), (function, sums)


def test_quantize_equals_cli():
    a, b = os.path.join(TMP, "q-cli"), os.path.join(TMP, "q-py")
    cli("quantize", MODEL, "-o", a, "--method", "dynamic", "--bits", "4", "--group-size", "64")
    rep = qbert.quantize(MODEL, b, method="dynamic", bits=4, group_size=64)
    assert rep["n_lowbit"] > 0 and rep["out_bytes"] < rep["in_bytes"]
    for f in ("model.safetensors", "config.json"):
        with open(os.path.join(a, f), "rb") as x, open(os.path.join(b, f), "rb") as y:
            assert x.read() == y.read(), f
    try:
        qbert.quantize(MODEL, b, method="dynamic")
        raise AssertionError("an existing output directory was replaced")
    except qbert.QbertError as e:
        assert "q-py" in str(e)


def digits9(v):
    """v as --json writes it: reals with 9 significant digits."""
    if isinstance(v, float):
        return float("%.9g" % v)
    if isinstance(v, dict):
        return {k: digits9(x) for k, x in v.items()}
    if isinstance(v, list):
        return [digits9(x) for x in v]
    return v


def test_evaluate_equals_cli():
    args = ["--data", SST2, "--limit", str(N), "--threads", "2"]
    want = json.loads(cli("eval", MODEL, *args, "--json"))
    got = qbert.evaluate(MODEL, SST2, limit=N, threads=2)
    for k in ("seconds", "examples_per_s", "model", "data"):
        want.pop(k), got.pop(k, None)
    assert digits9(got) == want, (got, want)
    with qbert.Model(MODEL) as m:  # an open model and a reference
        got = qbert.evaluate(m, SST2, limit=20, reference=MODEL)
    assert got["agreement"] == 1.0 and got["agreement_n"] == 20
    conll = os.path.join(SHARED, "data", "conll2003", "test.txt")
    if os.path.isdir(CONLL) and os.path.exists(conll):
        want = json.loads(cli("eval", CONLL, "--data", conll, "--limit", "40", "--json"))
        got = qbert.evaluate(CONLL, conll, limit=40)
        for k in ("seconds", "examples_per_s", "model", "data"):
            want.pop(k), got.pop(k, None)
        assert want["entity_types"] and digits9(got) == want, (got, want)


def test_threads_predict_at_once():
    """4 threads in predict() at once (the GIL released in C), each with a
    session of its own: the same bits as one thread alone."""
    texts = sst2_texts(64 if not SANITIZE else 16)
    with qbert.Model(MODEL, threads=1) as m:
        want = m.predict(texts)
        start = threading.Barrier(4)

        def run(_):
            start.wait()
            return m.predict(texts)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(run, range(4)))
    for got in runs:
        assert got.labels == want.labels and np.array_equal(got.logits, want.logits)


def raises(kind, fn, *words):
    """fn() raises kind with a message holding words."""
    try:
        fn()
    except kind as e:
        assert all(w in str(e) for w in words), (str(e), words)
        return
    raise AssertionError("no %s (wanted one with %s)" % (kind.__name__, words))


def test_bad_arguments_raise():
    raises(ValueError, lambda: qbert.Model(MODEL, max_length=-5), "max_length")  # was the default
    raises(ValueError, lambda: qbert.Model(MODEL, batch=0), "batch")
    with qbert.Model(MODEL) as m:
        raises(TypeError, lambda: m.predict(None), "texts", "NoneType")  # was "has no len()"
        raises(TypeError, lambda: m.embed(5), "texts", "int")
        texts = ["great film", "dull"]
        want = m.predict(texts)
        got = m.predict(t for t in texts)  # an iterable, as a list
        assert got.labels == want.labels and np.array_equal(got.logits, want.logits)
        got = m.predict(iter(texts), pairs=(t for t in texts))
        assert np.array_equal(got.logits, m.predict(texts, pairs=texts).logits)
        assert np.array_equal(m.embed(iter(texts)), m.embed(texts))


def test_messages_name_the_problem():
    with qbert.Model(MODEL) as m:
        raises(qbert.QbertError, lambda: m.embed("x", pooling="mean+mean"), "'mean' given twice")
        raises(qbert.QbertError, lambda: m.embed("x", pooling="mean+median"), "unknown mode 'median'")
        try:
            m.decode([-1])
            raise AssertionError("id -1 decoded")
        except qbert.QbertError as e:
            assert str(e).startswith("decode: id -1"), str(e)  # was "decode: decode: ..."
        raises(qbert.QbertError, lambda: m.predict([b"ok"], pairs=[b"caf\xc3 x"]), "text 1: text pair: invalid UTF-8")
    if os.path.isdir(CONLL):  # a token model says so too (was "text 1: text: ...")
        with qbert.Model(CONLL) as m:
            raises(qbert.QbertError, lambda: m.predict([b"ok"], pairs=[b"caf\xc3 x"]),
                   "text 1: text pair: invalid UTF-8")
    out = os.path.join(TMP, "q-keep")
    rep = qbert.quantize(MODEL, out, keep="classifier")  # one pattern, not its characters
    assert rep["n_fp32"] == 1, rep
    raises(qbert.QbertError, lambda: qbert.quantize(MODEL, out), "already exists", "force=True")
    raises(qbert.QbertError, lambda: qbert.quantize(MODEL, os.path.join(TMP, "no", "q")), "parents=True")
    # saved statistics are a finished calibration: texts beside them would not be read
    raises(qbert.QbertError, lambda: qbert.quantize(MODEL, os.path.join(TMP, "q-stats"), method="static",
                                                    calib_file=SST2, calib_stats=SST2), "finished calibration")
    # was only "(see 'qbert compare --help')"
    raises(qbert.QbertError, lambda: qbert.compare(MODEL, SST2, SST2, os.path.join(TMP, "cmp"), methods="bogus"),
           "unknown method 'bogus'")


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def test_short_lived_threads_reuse_sessions():
    """40 threads one after another, each predicting once: they share the
    sessions (each thread kept its own, ~16 MB, until close())."""
    if not os.path.exists("/proc/self/statm"):
        return
    with qbert.Model(MODEL, threads=1) as m:
        want = m.predict("a fine film")
        got = []

        def once():
            t = threading.Thread(target=lambda: got.append(m.predict("a fine film")))
            t.start()
            t.join()
        once()
        before = rss_mb()
        for _ in range(40):
            once()
        grown = rss_mb() - before
    assert grown < 40, "RSS grew %.0f MB over 40 short-lived threads" % grown
    assert len(got) == 41 and all(g.labels == want.labels and np.array_equal(g.logits, want.logits) for g in got)


def test_errors_raise():
    cases = [lambda: qbert.Model(os.path.join(TMP, "nope")),
             lambda: qbert.Model(MODEL).predict([b"caf\xc3 au lait"]),
             lambda: qbert.Model(MODEL).predict(["\udc80"]),
             lambda: qbert.Model(MODEL).embed(["x"], pooling="median"),
             lambda: qbert.Model(MODEL, max_length=100000),
             lambda: qbert.evaluate(MODEL, os.path.join(TMP, "nope.tsv")),
             lambda: qbert.quantize(MODEL, os.path.join(TMP, "q-bad"), method="static"),
             lambda: qbert.quantize(MODEL, os.path.join(TMP, "q-bad"), method="sideways")]
    for k, case in enumerate(cases):
        try:
            case()
        except qbert.QbertError as e:
            assert str(e) and "\n" not in str(e), (k, str(e))
            continue
        raise AssertionError("case %d did not raise" % k)


def child(code):
    """Runs code in a fresh python3 with the binding imported as qbert and
    MODEL, SST2 and CONLL set: a crash there fails the test instead of
    ending this process.  Returns (returncode, stderr)."""
    prelude = "import qbert, threading\nMODEL, SST2, CONLL = %r, %r, %r\n" % (MODEL, SST2, CONLL)
    p = subprocess.run([sys.executable, "-c", prelude + code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=300, check=False)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def test_closed_model_raises():
    """Every method and function given a closed Model raises QbertError
    naming it closed (embed, decode and evaluate crashed; a closed
    reference was dropped)."""
    rc, err = child("""
m = qbert.Model(MODEL)
m2 = qbert.Model(MODEL)
m.close()
m.close()  # twice: nothing more
cases = {"predict": lambda: m.predict("x"), "tokenize": lambda: m.tokenize("x"), "embed": lambda: m.embed("x"),
         "decode": lambda: m.decode([101, 7592, 102]), "evaluate": lambda: qbert.evaluate(m, SST2, limit=4),
         "reference": lambda: qbert.evaluate(m2, SST2, limit=4, reference=m),
         "quantize": lambda: qbert.quantize(m, "/nonexistent/q")}
for name, case in cases.items():
    try:
        case()
        raise SystemExit(name + ": no error")
    except qbert.QbertError as e:
        assert "the model is closed" in str(e), (name, str(e))
assert m2.predict("great film").labels == ["positive"]
""")
    assert rc == 0, (rc, err[-2000:])


def test_close_waits_for_calls():
    """close() while other threads predict: it waits for their calls, which
    finish with their results; calls after it raise QbertError."""
    rc, err = child("""
m = qbert.Model(MODEL, threads=1)
texts = ["a long enough sentence to keep the model busy for a while"] * 64
want = m.predict(texts).labels
running, results, errors = threading.Semaphore(0), [], []
def run():
    try:
        while True:
            results.append(m.predict(texts).labels == want)
            running.release()
    except Exception as e:
        if not (isinstance(e, qbert.QbertError) and "the model is closed" in str(e)):
            errors.append(repr(e))
ts = [threading.Thread(target=run) for _ in range(4)]
for t in ts:
    t.start()
for _ in range(8):  # all busy in their next calls
    running.acquire()
m.close()
for t in ts:
    t.join()
assert not errors and results and all(results), (errors, results)
""")
    assert rc == 0, (rc, err[-2000:])


def test_half_built_model_quiet():
    """A Model whose __init__ raised closes quietly (its __del__ printed
    'Exception ignored ... no attribute _m')."""
    rc, err = child("""
for bad in (None, 5):
    try:
        qbert.Model(bad)
        raise SystemExit("Model(%r) loaded" % (bad,))
    except TypeError:
        pass
import gc; gc.collect()
""")
    assert rc == 0 and not err, (rc, err[-2000:])


def test_struct_layout():
    """The ctypes mirrors have the C structs' sizes and every field's offset
    (a field added to qbert.h without the binding would shift the later ones)."""
    from qbert import _lib
    structs = {"qb_error": _lib.Error, "qb_model_info": _lib.ModelInfo, "qb_encoding": _lib.Encoding,
               "qb_words": _lib.Words, "qb_word_span": _lib.WordSpan, "qb_session_params": _lib.SessionParams,
               "qb_eval_params": _lib.EvalParams, "qb_eval_result": _lib.EvalResult,
               "struct qb_entity_score": _lib.EntityScore, "qb_quant_params": _lib.QuantParams,
               "qb_quant_report": _lib.QuantReport, "qb_embed_params": _lib.EmbedParams,
               "qb_load_params": _lib.LoadParams, "qb_entity": _lib.Entity}
    want = []
    c = os.path.join(TMP, "sizes.c")
    with open(c, "w") as f:
        f.write('#include "qbert.h"\n#include <stddef.h>\n#include <stdio.h>\nint main(void) {\n')
        for name, s in structs.items():
            f.write('    printf("%%zu\\n", sizeof(%s));\n' % name)
            want.append((name, ctypes.sizeof(s)))
            for field, _ in s._fields_:
                f.write('    printf("%%zu\\n", offsetof(%s, %s));\n' % (name, field))
                want.append((name + "." + field, getattr(s, field).offset))
        f.write("    return 0;\n}\n")
    exe = os.path.join(TMP, "sizes")
    subprocess.run(["cc", "-I", os.path.join(SRC, "include"), "-o", exe, c], check=True)
    got = [int(x) for x in subprocess.run([exe], stdout=subprocess.PIPE, check=True).stdout.split()]
    assert len(got) == len(want)
    for (what, n), c_value in zip(want, got):
        assert n == c_value, (what, n, c_value)

if __name__ == "__main__":
    failed = 0
    for name, fn in sorted(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print("ok", name)
            except Exception as e:  # report every test, then fail
                failed += 1
                print("FAIL", name, repr(e)[:2000])
    raise SystemExit(1 if failed else 0)
