"""qbert from Python: load, predict, embed, tokenize, quantize, evaluate.

The package calls libqbert.so through ctypes (no compiler needed); every
foreign call releases the GIL, so Python threads run models in parallel.
Failures raise QbertError carrying qbert's one-line message.

    import qbert
    m = qbert.Model("models/bert-mini-sst2", threads=2)
    p = m.predict(["great film", "dull"])   # p.labels, p.probabilities, p.logits
"""
import collections
import contextlib
import ctypes
import json
import operator
import os
import re
import shutil
import subprocess
import threading
from ctypes import POINTER, byref, c_char_p, c_int, c_size_t, c_void_p

import numpy as np

from . import _lib
from ._lib import lib

__all__ = ["Model", "Predictions", "QbertError", "quantize", "evaluate", "compare", "__version__"]
__version__ = "0.1.0"

_TASKS = {0: "sequence", 1: "token", 2: "none", 3: "mlm"}
_ARCHS = {0: "bert", 1: "albert", 2: "distilbert"}

# Sequence models: labels [n], probabilities float32 [n], logits float32 [n,
# labels], scores float32 [n, labels] (info["function_to_apply"]: softmax, or
# a sigmoid per label).  Token models: per text, the words (the text's, then
# the pair's, as the model's pre-tokenizer splits them), their tags (None past
# truncation), the tags' softmax probabilities and the per-token logits
# [tokens, labels]; with aggregate="simple", entities: per text a list of
# {entity, score, start, end, text, segment} as `qbert predict --aggregate
# simple` finds them.  With predict(..., tokens=True), encodings holds each
# text's tokenize() dict.
Predictions = collections.namedtuple("Predictions", "labels probabilities logits scores words encodings entities")


_ERR_ARG, _ERR_UTF8 = 5, 6  # qb_status


class QbertError(Exception):
    """A qbert failure: str() is the one-line message, .status the
    qb_status code's name (qb_status_name), .code the code."""

    def __init__(self, message, code=_ERR_ARG):
        super().__init__(message)
        self.code = code
        self.status = lib.qb_status_name(code).decode()


def _raise(err, prefix="", words=()):
    """err as QbertError: prefix before its message unless it starts with
    it already; words: (old, new) replacements in the message."""
    msg = err.msg.decode("utf-8", "replace")
    for old, new in words:
        msg = msg.replace(old, new)
    raise QbertError((prefix if not msg.startswith(prefix) else "") + msg, err.code)


# The library's messages name CLI flags; quantize() takes keywords.
_QUANT_KEYWORDS = (("--force", "force=True"), ("--parents", "parents=True"), ("--calib-stats", "calib_stats="),
                   ("--calib-n", "calib_n="), ("--calib FILE", "calib_file=FILE"), ("--calib", "calib_file="))


def _text_list(texts, what):
    """texts (a str, bytes, or an iterable of them) as a list."""
    if isinstance(texts, (str, bytes)):
        return [texts]
    if isinstance(texts, (list, tuple)):
        return texts
    try:
        it = iter(texts)
    except TypeError:
        raise TypeError("%s: expected str, bytes or an iterable of them, not %s"
                        % (what, type(texts).__name__)) from None
    return list(it)


_POOLING_MODES = "cls, mean, max, mean_sqrt_len, weightedmean, lasttoken, joined by '+'"


def _pooling(names):
    """qb_pooling_parse of names, or QbertError saying what is wrong with them."""
    if not isinstance(names, str):
        raise TypeError("pooling: expected str, not %s" % type(names).__name__)
    bits = lib.qb_pooling_parse(names.encode())
    if bits:
        return bits
    items = re.split("[+,]", names)
    why = "no mode"
    for k, item in enumerate(items):
        if not item:
            why = "an empty mode"
        elif not lib.qb_pooling_parse(item.encode()):
            why = "unknown mode '%s'" % item
        elif item in items[:k]:
            why = "'%s' given twice" % item
        else:
            continue
        break
    raise QbertError("pooling: %s in '%s' (%s)" % (why, names, _POOLING_MODES))


def _char_index(b):
    """For each byte offset of UTF-8 b (and its end): the character it starts or falls in."""
    index, c = [], 0
    for i in range(len(b)):
        if (b[i] & 0xC0) != 0x80 and i:
            c += 1
        index.append(c)
    index.append(c + 1 if b else 0)
    return index


def _text_bytes(t, what):
    if isinstance(t, bytes):
        return t
    if isinstance(t, str):
        try:
            return t.encode("utf-8")
        except UnicodeEncodeError as e:  # lone surrogates
            raise QbertError("%s: not valid UTF-8 (%s)" % (what, e.reason), _ERR_UTF8) from None
    raise TypeError("%s: expected str or bytes, not %s" % (what, type(t).__name__))


_F32P = ctypes.POINTER(ctypes.c_float)


def _scores(fn, row):
    """fn (lib.qb_softmax or lib.qb_sigmoid) of a float32 row, as the CLI computes it."""
    row = np.ascontiguousarray(row, np.float32)
    out = np.empty(len(row), np.float32)
    fn(row.ctypes.data_as(_F32P), len(row), out.ctypes.data_as(_F32P))
    return out


def _load(path, isa=None, threads=0):
    err = _lib.Error()
    p = lib.qb_load_default_params()
    if isa:
        p.isa = isa.encode()
    p.n_threads = threads
    h = c_void_p()
    if lib.qb_model_load(os.fsencode(path), byref(p), byref(h), byref(err)):
        _raise(err)
    return h


@contextlib.contextmanager
def _handle(model, threads):
    """The qb_model of model: an open Model's (held open for the call), or
    one loaded from a directory and freed after it."""
    if isinstance(model, Model):
        with model._use():
            yield model._m
        return
    h = _load(model, threads=threads)
    try:
        yield h
    finally:
        lib.qb_model_free(h)


def _encoding(e):
    return {"input_ids": e.input_ids[:e.n], "token_type_ids": e.token_type_ids[:e.n], "truncated_tokens": e.n_truncated}


# Idle sessions a Model keeps per kind of call, for the next calls: more
# are freed as their calls return.
_IDLE_MAX = max(4, os.cpu_count() or 1)


class _Runner:
    """One session with its encodings: what a thread needs to run a model."""

    def __init__(self, model, batch, max_seq, threads, pooling=None):
        self.batch = batch
        self.err = _lib.Error()
        self.s = c_void_p()
        sp = _lib.SessionParams(batch, max_seq, threads)
        if lib.qb_session_create(model._m, byref(sp), byref(self.s), byref(self.err)):
            _raise(self.err)
        if pooling is not None and lib.qb_session_set_pooling(self.s, byref(pooling), byref(self.err)):
            lib.qb_session_free(self.s)
            _raise(self.err)
        self.enc = (_lib.Encoding * batch)()
        self.encp = (POINTER(_lib.Encoding) * batch)(*[ctypes.pointer(e) for e in self.enc])
        self.enc_refs = [byref(e) for e in self.enc]
        self.err_ref = byref(self.err)

    def free(self):
        for e in self.enc:
            lib.qb_encoding_free(byref(e))
        lib.qb_session_free(self.s)
        self.s = None


class Model:
    """A loaded model.  Calls from several threads are safe: each call takes
    a session (working memory) over the one read-only model from a pool and
    gives it back, so sessions number the calls made at once, not the
    threads that ever called."""

    _m = None  # until loaded: close() and __del__ on a Model whose __init__ failed

    def __init__(self, path, threads=2, batch=8, max_length=0, isa=None):
        self.path = os.fspath(path)
        if max_length < 0:
            raise ValueError("max_length: %d is negative (0: the model's own)" % max_length)
        if batch < 1:
            raise ValueError("batch: %d; at least 1" % batch)
        self.threads, self.batch = threads, batch
        self._runners = []  # every session
        self._idle = {}  # a session's key -> those no call holds now
        # guards _runners, _idle, _calls and _closed; close() waits on it for the calls in flight
        self._cond = threading.Condition()
        self._calls = collections.Counter()  # thread id -> calls of this model it is in
        self._closed = False
        self._m = _load(self.path, isa, threads)
        i = _lib.ModelInfo()
        lib.qb_model_get_info(self._m, byref(i))
        self._task, self._labels = i.task, i.num_labels
        self.max_length = lib.qb_model_max_length(self._m, max_length)
        if self.max_length > i.max_position:
            self.close()
            raise QbertError("max_length %d exceeds the model's %d positions" % (self.max_length, i.max_position))
        warning = lib.qb_model_warning(self._m)
        self.info = {
            "path": self.path, "arch": _ARCHS.get(i.arch), "task": _TASKS.get(i.task),
            "model_type": i.model_type.decode(), "class_name": i.class_name.decode(),
            "hidden_act": i.hidden_act.decode(), "tokenizer": i.tokenizer.decode(), "isa": i.isa.decode(),
            "labels": [self._label(k) for k in range(i.num_labels)],
            "quantization": lib.qb_model_quant_summary(self._m).decode(),
            "warning": warning.decode() if warning else None,
            "layer_norm_eps": i.layer_norm_eps, "function_to_apply": lib.qb_head_function_name(i.head_function).decode(),
            **{k: getattr(i, k) for k in ("vocab_size", "hidden_size", "embedding_size", "num_layers", "num_heads",
                                          "intermediate_size", "max_position", "type_vocab_size", "num_labels",
                                          "mask_token_id", "n_params", "file_bytes", "n_tensors")},
        }

    def _label(self, k):
        s = lib.qb_model_label(self._m, k)
        return s.decode("utf-8", "replace") if s is not None else str(k)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def close(self):
        """Frees every session and the model, once the calls other threads
        are making with it have returned; later calls raise QbertError."""
        if self._m is None:  # closed, or __init__ failed before the load
            return
        with self._cond:
            if self._calls[threading.get_ident()]:
                raise QbertError("%s: close() inside a call of this model" % self.path)
            self._closed = True
            while sum(self._calls.values()):
                self._cond.wait()
            runners, self._runners, self._idle = self._runners, [], {}
            m, self._m = self._m, None
        for r in runners:
            r.free()
        if m:
            lib.qb_model_free(m)

    @contextlib.contextmanager
    def _use(self):
        """A call with the model: refused once close() began, waited for by close()."""
        me = threading.get_ident()
        with self._cond:
            if self._closed or self._m is None:
                raise QbertError("%s: the model is closed" % self.path)
            self._calls[me] += 1
        try:
            yield
        finally:
            with self._cond:
                self._calls[me] -= 1
                if not self._calls[me]:
                    del self._calls[me]
                    self._cond.notify_all()

    @contextlib.contextmanager
    def _session(self, key, batch, pooling=None):
        """A session for one call (key: what it was set up for), inside
        _use(): an idle one, or a new one.  Given back after the call; past
        _IDLE_MAX idle ones of a key, it is freed."""
        with self._use():
            with self._cond:
                idle = self._idle.get(key)
                r = idle.pop() if idle else None
            if r is None:
                r = _Runner(self, batch, self.max_length, self.threads, pooling)
                with self._cond:
                    self._runners.append(r)
            try:
                yield r
            finally:
                with self._cond:
                    idle = self._idle.setdefault(key, [])
                    if len(idle) < _IDLE_MAX:
                        idle.append(r)
                        r = None
                    else:
                        self._runners.remove(r)
                if r is not None:
                    r.free()

    def _tokenize(self, r, k, text, pair, index):
        """Text number index (0-based) into r's encoding k."""
        b = text if type(text) is bytes else _text_bytes(text, "text %d" % (index + 1))
        pb = None if pair is None else _text_bytes(pair, "text %d (pair)" % (index + 1))
        if lib.qb_tokenize(self._m, b, len(b), pb, 0 if pb is None else len(pb), self.max_length, r.enc_refs[k],
                           r.err_ref):
            _raise(r.err, "text %d: " % (index + 1))

    def _split(self, r, b, what, pair=False):
        """b's words as the model's pre-tokenizer splits them: [(start, end)],
        and the bytes each is tokenized from (qb_word_span's tok_start/tok_end).
        pair: b is a text pair (qb_split_words calls every input "text")."""
        spans, n = (_lib.WordSpan * max(1, len(b)))(), c_int()
        if lib.qb_split_words(self._m, b, len(b), spans, byref(n), r.err_ref):
            if pair and r.err.msg.startswith(b"text: "):
                r.err.msg = b"text pair: " + r.err.msg[len(b"text: "):]
            _raise(r.err, what + ": ")
        return ([(spans[i].start, spans[i].end) for i in range(n.value)],
                [(spans[i].tok_start, spans[i].tok_end) for i in range(n.value)])

    def _tokenize_words(self, r, k, segments, what):
        """Pre-split segments [(bytes, spans)] (a text, maybe a pair) into r's encoding k."""
        ws = []  # the ctypes arrays keep the words alive
        for b, spans in segments:
            words = [b[s:e] for s, e in spans[1]]
            n = max(1, len(words))
            ws.append(_lib.Words((c_char_p * n)(*words), (c_size_t * n)(*[len(w) for w in words]), len(words)))
        pair = byref(ws[1]) if len(ws) > 1 else None
        if lib.qb_tokenize_word_pair(self._m, byref(ws[0]), pair, self.max_length, r.enc_refs[k], r.err_ref):
            _raise(r.err, what + ": ")

    def tokenize(self, text, pair=None):
        """{'input_ids', 'token_type_ids', 'tokens', 'offset_mapping',
        'truncated_tokens'} of one text.  offset_mapping is Hugging Face's
        fast tokenizers': (start, end) in the characters of the text (or of
        the pair, for its tokens), (0, 0) for special tokens; in bytes when
        the text is bytes."""
        with self._session("predict", self.batch) as r:
            self._tokenize(r, 0, text, pair, 0)
            d = _encoding(r.enc[0])
            d["tokens"] = [(lib.qb_token_text(self._m, t) or b"").decode("utf-8", "replace") for t in d["input_ids"]]
            d["offset_mapping"] = self._offsets(r, text, pair)
        return d

    def _offsets(self, r, text, pair):
        """r's encoding 0's offsets, in the units text and pair came in."""
        segs = [s if type(s) is bytes else _text_bytes(s, "text") for s in (text, pair) if s is not None]
        b, pb = segs[0], segs[1] if len(segs) > 1 else None
        offs = (_lib.TokenOffset * max(1, r.enc[0].n))()
        if lib.qb_token_offsets(self._m, b, len(b), pb, 0 if pb is None else len(pb), r.enc_refs[0], offs,
                                r.err_ref):
            _raise(r.err, "offsets: ")
        # byte offset -> character index of each segment given as str
        index = [None if type(s) is bytes else _char_index(bs) for s, bs in zip((text, pair), segs)]
        out = []
        for o in offs[:r.enc[0].n]:
            ix = index[o.segment] if not o.special else None
            out.append((0, 0) if o.special else (o.start, o.end) if ix is None else (ix[o.start], ix[o.end]))
        return out

    def decode(self, ids, skip_special_tokens=True):
        """Token ids back to text, as Hugging Face's tokenizers decodes them."""
        ids = [operator.index(i) for i in ids]
        for i in ids:  # ctypes would wrap them to 32 bits
            if not -2 ** 31 <= i < 2 ** 31:
                raise QbertError("decode: id %d is past the vocabulary" % i)
        a = (ctypes.c_int32 * max(1, len(ids)))(*ids)
        n, err = c_size_t(), _lib.Error()
        buf = ctypes.create_string_buffer(16 * len(ids) + 16)  # most texts at once; a longer one again
        with self._use():
            args = (self._m, a, len(ids), int(bool(skip_special_tokens)))
            while True:
                if lib.qb_detokenize(*args, buf, len(buf), byref(n), byref(err)):
                    _raise(err, "decode: ")
                if n.value < len(buf):
                    return buf.raw[:n.value].decode("utf-8")
                buf = ctypes.create_string_buffer(n.value + 1)

    def predict(self, texts, pairs=None, tokens=False, aggregate=None):
        """Labels, probabilities and logits of texts (a str or a list), in
        batches of `batch` as `qbert predict` runs them; aggregate="simple"
        (token models) also groups entities as `--aggregate simple` does."""
        if self._task in (2, 3):
            raise QbertError("%s: a bare encoder (%s) has no classification head; use embed()"
                             % (self.path, self.info["class_name"]))
        texts = _text_list(texts, "texts")
        if isinstance(pairs, (str, bytes)):
            pairs = [pairs] * len(texts)
        elif pairs is not None:
            pairs = _text_list(pairs, "pairs")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError("pairs: %d given for %d texts" % (len(pairs), len(texts)))
        if aggregate not in (None, "simple"):
            raise ValueError("aggregate: simple or None, not %r" % (aggregate,))
        if aggregate and self._task != 1:
            raise QbertError("aggregate is for token-classification models; %s classifies sequences" % self.path)
        encs = [] if tokens else None
        with self._session("predict", self.batch) as r:
            if self._task == 1:
                return self._predict_tokens(r, texts, pairs, encs, aggregate)
            return self._predict_sequences(r, texts, pairs, encs)

    def _predict_sequences(self, r, texts, pairs, encs):
        n, L = len(texts), self._labels
        logits = np.empty((n, L), np.float32)
        scores = np.empty((n, L), np.float32)
        probs = np.empty(n, np.float32)
        labels, names, out = [], self.info["labels"], logits.ctypes.data
        for at in range(0, n, r.batch):
            rows = min(r.batch, n - at)
            for k in range(rows):
                self._tokenize(r, k, texts[at + k], None if pairs is None else pairs[at + k], at + k)
            if lib.qb_session_run_encodings(r.s, r.encp, rows, r.err_ref):
                _raise(r.err)
            if encs is not None:
                encs.extend(_encoding(r.enc[k]) for k in range(rows))
            for k in range(rows):
                ctypes.memmove(out + 4 * L * (at + k), lib.qb_session_logits(r.s, k), 4 * L)
                best = int(np.argmax(logits[at + k]))
                lib.qb_head_scores(self._m, logits[at + k].ctypes.data_as(_F32P), L, scores[at + k].ctypes.data_as(_F32P))
                probs[at + k] = scores[at + k][best]
                labels.append(names[best])
        return Predictions(labels, probs, logits, scores, None, encs, None)

    def _predict_tokens(self, r, texts, pairs, encs, aggregate):
        labels, probs, logits, words, ents = [], [], [], [], [] if aggregate else None
        for at in range(0, len(texts), r.batch):
            chunk = []
            for k in range(min(r.batch, len(texts) - at)):
                what = "text %d" % (at + k + 1)
                segs = [_text_bytes(texts[at + k], what)]
                if pairs is not None and pairs[at + k] is not None:
                    segs.append(_text_bytes(pairs[at + k], what + " (pair)"))
                split = [(b, self._split(r, b, what, pair=j > 0)) for j, b in enumerate(segs)]
                self._tokenize_words(r, k, split, what)
                chunk.append([(b, sp[0]) for b, sp in split])
            if lib.qb_session_run_encodings(r.s, r.encp, len(chunk), r.err_ref):
                _raise(r.err)
            if encs is not None:
                encs.extend(_encoding(r.enc[k]) for k in range(len(chunk)))
            for k, segs in enumerate(chunk):
                e = r.enc[k]
                lg = np.ctypeslib.as_array(lib.qb_session_logits(r.s, k), (e.n, self._labels)).copy()
                tags, p = self._word_tags(e, lg, sum(len(sp) for _, sp in segs))
                labels.append(tags)
                probs.append(np.array(p, np.float32))
                logits.append(lg)
                words.append([b[s:t].decode("utf-8", "replace") for b, sp in segs for s, t in sp])
                if aggregate:
                    ents.append(self._entities(e, lg, segs))
        return Predictions(labels, probs, logits, None, words, encs, ents)

    def _word_tags(self, e, lg, n_words):
        """Each word's tag and its probability, from its first sub-token."""
        first = {}
        for t in range(e.n):
            first.setdefault(e.word_ids[t], t)
        tags, p = [], []
        for wi in range(n_words):
            t = first.get(wi)
            if t is None:
                tags.append(None)
                p.append(np.nan)
                continue
            best = int(np.argmax(lg[t]))
            tags.append(self._label(best))
            p.append(_scores(lib.qb_softmax, lg[t])[best])
        return tags, p

    def _entities(self, e, lg, segs):
        """`--aggregate simple`, by the library's qb_entities_simple."""
        spans = [(s, t) for _, sp in segs for s, t in sp]
        words = (_lib.WordSpan * max(1, len(spans)))(*[_lib.WordSpan(s, t, s, t) for s, t in spans])
        found = (_lib.Entity * (e.n + 1))()
        lg = np.ascontiguousarray(lg, np.float32)
        n = lib.qb_entities_simple(self._m, byref(e), lg.ctypes.data_as(_F32P), words, len(segs[0][1]), len(spans),
                                   found)
        out = []
        for x in found[:n]:
            b = segs[x.segment][0]
            out.append({"entity": self._label(x.label)[x.type_offset:], "score": x.score,
                        "start": _chars(b, x.start), "end": _chars(b, x.end),
                        "text": b[x.start:x.end].decode("utf-8", "replace"), "segment": x.segment})
        return out

    def _prompt(self, name, none):
        """The bytes put before each text: prompt `name` of the model's
        config_sentence_transformers.json, its default_prompt_name's when
        name is None, nothing when `none`."""
        if none:
            return b""
        text, err = c_char_p(), _lib.Error()
        if lib.qb_model_prompt(self._m, None if name is None else name.encode(), byref(text), byref(err)):
            _raise(err)
        return text.value or b""

    def embed(self, texts, pooling=None, normalize=None, batch=32, prompt_name=None, no_prompt=False):
        """Sentence embeddings, float32 [n, dim].  pooling ("mean", "cls",
        "max", "mean_sqrt_len", "weightedmean", "lasttoken" or several joined
        by '+') and normalize default to what the model directory asks for,
        as `qbert embed` does; so does the prompt put before each text
        (sentence-transformers' prompt_name; no_prompt: none)."""
        if batch < 1:
            raise ValueError("batch: %d; at least 1" % batch)
        texts = _text_list(texts, "texts")
        with self._use():
            prompt = self._prompt(prompt_name, no_prompt)
            p = lib.qb_model_embed_params(self._m)
            if pooling is not None:
                p.pooling = _pooling(pooling)
            if normalize is not None:
                p.normalize = int(bool(normalize))
            dim = lib.qb_embed_dim(self._m, p.pooling)
            with self._session(("embed", p.pooling, p.normalize, batch), batch, p) as r:
                return self._embed_rows(r, texts, prompt, dim, batch)

    def _embed_rows(self, r, texts, prompt, dim, batch):
        out = np.empty((len(texts), dim), np.float32)
        for at in range(0, len(texts), batch):
            rows = min(batch, len(texts) - at)
            for k in range(rows):
                text = texts[at + k]
                if prompt:
                    text = prompt + _text_bytes(text, "text %d" % (at + k + 1))
                self._tokenize(r, k, text, None, at + k)
            if lib.qb_session_run_encodings(r.s, r.encp, rows, byref(r.err)):
                _raise(r.err)
            for k in range(rows):
                ctypes.memmove(out[at + k].ctypes.data, lib.qb_session_embedding(r.s, k), 4 * dim)
        return out


def _chars(b, n):
    """Characters in the first n bytes of UTF-8 b."""
    return sum((c & 0xC0) != 0x80 for c in b[:n])


def quantize(model_dir, out_dir, method="dynamic", bits=8, threads=0, keep=(), **options):
    """Writes a quantized model directory, as `qbert quantize` does.  options
    are qb_quant_params fields by name (per_channel, act_per_token, calib_file,
    calib_n, observer, group_size, quantize_embeddings, force, ...); bits may be
    "ternary".  Returns the report as a dict."""
    m_code = c_int()
    if not lib.qb_quant_method_parse(method.encode(), byref(m_code)):
        raise QbertError("unknown method '%s' (dynamic, static, weight-only, fp16, bf16)" % method)
    p = lib.qb_quant_default_params(0)
    p.method = m_code.value
    p.act_per_token = lib.qb_quant_default_params(m_code.value).act_per_token
    if bits == "ternary":
        p.ternary = 1
    else:
        p.bits = int(bits)
    p.n_threads = threads
    if isinstance(keep, (str, bytes)):
        keep = [keep]
    keep_b = [k if isinstance(k, bytes) else k.encode() for k in keep]
    keep_arr = (c_char_p * max(1, len(keep_b)))(*keep_b)
    p.keep, p.n_keep = ctypes.cast(keep_arr, POINTER(c_char_p)), len(keep_b)
    for k, v in options.items():
        if k not in dict(_lib.QuantParams._fields_) or k in ("keep", "n_keep", "progress", "progress_ctx"):
            raise TypeError("quantize: unknown option '%s'" % k)
        if isinstance(v, (str, os.PathLike)):
            v = os.fsencode(v)
        setattr(p, k, v)
    with _handle(model_dir, threads) as m:
        rep, err = _lib.QuantReport(), _lib.Error()
        if lib.qb_quantize(m, byref(p), os.fsencode(out_dir), byref(rep), byref(err)):
            _raise(err, words=_QUANT_KEYWORDS)
    out = {k: getattr(rep, k) for k, _ in _lib.QuantReport._fields_}
    out["warning"] = rep.warning.decode("utf-8", "replace")
    return out


def evaluate(model, data, task="auto", limit=0, max_length=0, batch=16, threads=0, reference=None, **columns):
    """Scores a model (a Model or a directory) on a labelled dataset, as `qbert
    eval --json` does; returns its fields as a dict.  columns: text_col,
    pair_col, label_col, header (1 yes, 0 no, -1 auto) for TSV files."""
    p = lib.qb_eval_default_params()
    p.data, p.task = os.fsencode(data), task.encode()
    p.limit, p.max_length, p.batch, p.n_threads = limit, max_length, batch, threads
    for k, v in columns.items():
        if k not in ("text_col", "pair_col", "label_col", "header"):
            raise TypeError("evaluate: unknown option '%s'" % k)
        setattr(p, k, v)
    with contextlib.ExitStack() as held:
        m = held.enter_context(_handle(model, threads))
        if reference is not None:
            p.reference = held.enter_context(_handle(reference, threads))
        r, err = _lib.EvalResult(), _lib.Error()
        if lib.qb_evaluate(m, byref(p), byref(r), byref(err)):
            _raise(err)
        try:
            return _eval_dict(m, r)
        finally:
            lib.qb_eval_result_free(byref(r))


def _eval_dict(m, r):
    label = lambda k: (lib.qb_model_label(m, k) or str(k).encode()).decode("utf-8", "replace")
    out = {"task": r.task.decode(), "n": r.n, "max_length": r.max_length, "truncated": r.n_truncated,
           "accuracy": r.accuracy, "macro_f1": r.macro_f1}
    if r.agreement_n:
        out.update(agreement=r.agreement, agreement_n=r.agreement_n, sqnr_db=r.sqnr_db, kl=r.kl, cosine=r.cosine)
    if r.token_task:
        out.update(entity_f1=r.entity_f1, entity_precision=r.entity_precision, entity_recall=r.entity_recall,
                   words_scored=r.total, words_unscored=r.words_unscored, words_tokenless=r.words_tokenless,
                   entity_types=[{"type": t.type.decode("utf-8", "replace"), "f1": t.f1, "precision": t.precision,
                                  "recall": t.recall, "gold": t.gold, "predicted": t.pred, "correct": t.tp}
                                 for t in r.entity_types[:r.n_entity_types]])
    out["per_class"] = [{"label": label(k), "precision": r.precision[k], "recall": r.recall[k], "f1": r.f1[k],
                         "support": r.support[k]} for k in range(r.n_classes)]
    out["seconds"] = r.seconds
    out["examples_per_s"] = r.n / r.seconds if r.seconds > 0 else float("inf")
    return out


def cli_path():
    """The qbert command: $QBERT_BIN, the one beside the library in use, or PATH's."""
    env = os.environ.get("QBERT_BIN")
    if env:
        return env
    for d in (os.path.dirname(lib._name), os.path.join(os.path.dirname(lib._name), "..", "bin")):
        c = os.path.join(d, "qbert")
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    c = shutil.which("qbert")
    if not c:
        raise QbertError("the qbert command was not found (set QBERT_BIN)")
    return c


def compare(model_dir, data, calib, out_dir, **options):
    """Runs `qbert compare` (the C API has no compare: it is a CLI driver of
    quantize, eval and bench processes) and returns its report.json.  options
    become flags: methods="fp32,dynamic" -> --methods fp32,dynamic; True -> a
    bare flag."""
    argv = [cli_path(), "compare", os.fspath(model_dir), "--data", os.fspath(data), "--calib", os.fspath(calib),
            "-o", os.fspath(out_dir)]
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif v not in (False, None):
            argv += [flag, str(v)]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode:
        # the last line but a usage error's "(see 'qbert compare --help')"
        lines = [l for l in p.stderr.decode("utf-8", "replace").strip().splitlines()
                 if l.strip() and not re.fullmatch(r"\(see 'qbert [a-z-]+ --help'\)", l.strip())]
        raise QbertError(lines[-1] if lines else "qbert compare failed (exit %d)" % p.returncode)
    with open(os.path.join(out_dir, "report.json")) as f:
        return json.load(f)
