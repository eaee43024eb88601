"""Batch scoring on a dask.distributed cluster.

    python3 -m qbert.dask_score MODEL_DIR --input data.jsonl --output out/ --workers 4
    python3 -m qbert.dask_score MODEL_DIR --input data.tsv --output out/ --scheduler tcp://host:8786

The input (JSONL, TSV with a header, or plain text lines, as `qbert
predict --input` reads them) is cut into partitions of whole predict
batches; each worker loads the model once and writes one output file per
partition, out/part-NNNNN.jsonl, through a temporary name renamed when
complete.  `cat out/part-*.jsonl` is byte for byte what `qbert predict
--input FILE --json` prints in one process.  A partition whose file exists
is not scored again: rerun the same command after a failure to resume.
Workers must see the input and output paths (a shared filesystem)."""
import argparse
import glob
import json
import os
import sys
import threading
import time
import uuid

from . import jsonout

_models = {}
_models_lock = threading.Lock()


def _model(model_dir, threads, batch):
    """The worker process's model: loaded by the first task, kept for the rest."""
    import qbert
    key = (model_dir, threads, batch)
    with _models_lock:
        if key not in _models:
            _models[key] = qbert.Model(model_dir, threads=threads, batch=batch)
        return _models[key]


def input_format(path, given=None):
    """As `qbert predict` chooses: --input-format, else the file's extension."""
    if given:
        return given
    ext = os.path.splitext(path)[1].lower()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv"}.get(ext, "text")


def _blank(line):
    return not line.strip(b" \t")


def _strip_eol(raw):
    return raw[:-1] if raw.endswith(b"\n") else raw


def plan(path, fmt, batch, lines_per_part):
    """Partitions [(first byte, end byte, first line number)], each a whole
    number of the CLI's batches (so every batch, and its padding, is the
    one `qbert predict` runs), and the TSV header."""
    per = max(batch, lines_per_part // batch * batch)
    parts, header = [], None
    with open(path, "rb") as f:
        pos, lineno, count, start, start_line = 0, 0, 0, None, None
        for raw in f:
            lineno += 1
            here, pos = pos, pos + len(raw)
            line = _strip_eol(raw).rstrip(b"\r")
            if fmt == "tsv" and lineno == 1:
                header = line.decode("utf-8").split("\t")
                continue
            if fmt != "text" and _blank(line):
                continue
            if start is None:
                start, start_line = here, lineno
            count += 1
            if count == per:
                parts.append((start, pos, start_line))
                start, count = None, 0
        if start is not None:
            parts.append((start, pos, start_line))
    return parts, header


# The fields a result line writes: an input field of one of these names is
# kept as "input_<name>", as the CLI keeps it (a gold "label").
_OUTPUT_FIELDS = {"text", "text_pair", "input_ids", "token_type_ids", "logits", "label", "probability", "scores",
                  "function_to_apply", "truncated_tokens", "words", "tags", "token_logits", "entities", "line",
                  "error"}


def _input_fields(extra):
    return {("input_" + k if k in _OUTPUT_FIELDS else k): v for k, v in (extra or {}).items()}


class _Partition:
    """The CLI's flush() over one partition: results of each batch in input
    order; a bad line is reported in its place (skip) or ends the run after
    the lines before it are written (stop)."""

    def __init__(self, model, source, fmt, header, skip, aggregate):
        self.m, self.source, self.fmt, self.header, self.skip = model, source, fmt, header, skip
        self.aggregate = aggregate
        self.out, self.pending, self.failure = [], [], None

    def read(self, lineno, line):
        """One input line to a pending (lineno, text, pair, extra, error)."""
        try:
            if self.fmt == "jsonl":
                o = jsonout.parse_object(line.decode("utf-8"))
                if not isinstance(o, dict) or not isinstance(o.get("text"), str):
                    return self._bad(lineno, '%s:%d: JSON line has no string "text"' % (self.source, lineno))
                text, pair = o.pop("text"), o.pop("text_pair", None)
                return (lineno, text, pair if isinstance(pair, str) else None, o, None)
            s = line.decode("utf-8")
        except (ValueError, UnicodeDecodeError) as e:
            return self._bad(lineno, "%s:%d: %s" % (self.source, lineno, e))
        if self.fmt == "text":
            if "\r" in s:
                return self._bad(lineno, "%s:%d: carriage return inside a line" % (self.source, lineno))
            return (lineno, s, None, None, None)
        cols = s.split("\t")
        if len(cols) != len(self.header):
            return self._bad(lineno, "%s:%d: %d fields, the header has %d" % (self.source, lineno, len(cols),
                                                                              len(self.header)))
        row = dict(zip(self.header, cols))
        text_col = next(c for c in ("sentence", "text", "sentence1") if c in row)
        pair_col = "sentence2" if text_col == "sentence1" else "text_pair"
        text, pair = row.pop(text_col), row.pop(pair_col, None)
        return (lineno, text, pair, row, None)

    def _bad(self, lineno, msg):
        return (lineno, None, None, None, msg)

    def add(self, entry, batch):
        if entry[4] and not self.skip:
            self.flush()
            self.failure = self.failure or entry[4]
            return
        self.pending.append(entry)
        if len(self.pending) == batch:
            self.flush()

    def flush(self):
        import qbert
        good = [e for e in self.pending if not e[4]]
        bad = {}
        try:
            preds = self._predict(good)
        except qbert.QbertError:  # find the rows that do not tokenize; the rest run together, as in the CLI
            for e in good:
                try:
                    self._predict([e])
                except qbert.QbertError as err:
                    bad[e[0]] = "%s input %d: %s" % (self.source, e[0], str(err).split(": ", 1)[-1])
            good = [e for e in good if e[0] not in bad]
            preds = self._predict(good)
        rows = dict(zip((e[0] for e in good), preds))
        for e in self.pending:
            err = e[4] or bad.get(e[0])
            if err and not self.skip:
                self.failure = self.failure or err
                break
            self.out.append(jsonout.line(dict(_input_fields(e[3]), line=e[0], error=err)) if err else rows[e[0]])
        self.pending = []

    def _predict(self, entries):
        if not entries:
            return []
        p = self.m.predict([e[1] for e in entries], pairs=[e[2] for e in entries], tokens=True,
                           aggregate=self.aggregate)
        return [self._line(e, p, k) for k, e in enumerate(entries)]

    def _line(self, e, p, k):
        enc = p.encodings[k]
        o = _input_fields(e[3])
        o["text"] = e[1]
        if e[2] is not None:
            o["text_pair"] = e[2]
        o["input_ids"], o["token_type_ids"] = enc["input_ids"], enc["token_type_ids"]
        if p.words is None:
            o["logits"] = jsonout.reals(p.logits[k].tolist())
            o["label"] = p.labels[k]
            o["probability"] = jsonout.Raw(jsonout.real(float(p.probabilities[k])))
            o["scores"] = jsonout.reals(p.scores[k].tolist())
            o["function_to_apply"] = self.m.info["function_to_apply"]
        else:
            o["token_logits"] = jsonout.Raw("[" + ", ".join(jsonout.reals(r) for r in p.logits[k].tolist()) + "]")
            if p.entities is not None:
                o["entities"] = p.entities[k]
            else:
                o["words"], o["tags"] = p.words[k], p.labels[k]
        o["truncated_tokens"] = enc["truncated_tokens"]
        return jsonout.line(o)


def score_partition(model_dir, threads, batch, path, fmt, header, part, out_path, skip, aggregate=None):
    """One partition: scored and written to out_path (through a temporary
    file renamed when complete), unless a finished file is already there."""
    if os.path.exists(out_path):
        return {"path": out_path, "resumed": True, "lines": 0}
    start, end, first_line = part
    m = _model(model_dir, threads, batch)
    job = _Partition(m, path, fmt, header, skip, aggregate)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(end - start)
    lineno = first_line - 1
    for raw in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
        lineno += 1
        line = raw.rstrip(b"\r")
        if fmt != "text" and _blank(line):
            continue
        job.add(job.read(lineno, line), batch)
        if job.failure:
            break
    if not job.failure:
        job.flush()
    if job.failure:
        raise RuntimeError(job.failure)
    tmp = "%s.tmp-%d-%d" % (out_path, os.getpid(), threading.get_ident())
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("".join(job.out))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out_path)
    return {"path": out_path, "resumed": False, "lines": len(job.out)}


def _job_record(args, fmt):
    st = os.stat(args.input)
    return {"model": os.path.abspath(args.model), "input": os.path.abspath(args.input), "size": st.st_size,
            "mtime_ns": st.st_mtime_ns, "format": fmt, "batch": args.batch,
            "partition_lines": args.partition_lines, "on_error": args.on_error, "aggregate": args.aggregate}


def _prepare_output(args, fmt):
    """out/job.json names the run; a rerun resumes only the same job."""
    os.makedirs(args.output, exist_ok=True)
    rec, path = _job_record(args, fmt), os.path.join(args.output, "job.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != rec:
            diff = ", ".join(k for k in rec if old.get(k) != rec[k])
            raise SystemExit("qbert.dask_score: error: %s holds another job (%s differ); use a new --output"
                             % (args.output, diff))
    else:
        with open(path + ".tmp", "w") as f:
            json.dump(rec, f, indent=2)
        os.replace(path + ".tmp", path)
    for stale in glob.glob(os.path.join(args.output, "part-*.tmp-*")):
        os.remove(stale)


def run(args, client):
    fmt = input_format(args.input, args.input_format)
    _prepare_output(args, fmt)
    parts, header = plan(args.input, fmt, args.batch, args.partition_lines)
    if fmt == "tsv" and not {"sentence", "text", "sentence1"} & set(header or []):
        raise RuntimeError("%s:1: the header has no column sentence, text or sentence1" % args.input)
    model, path = os.path.abspath(args.model), os.path.abspath(args.input)
    outs = [os.path.join(os.path.abspath(args.output), "part-%05d.jsonl" % i) for i in range(len(parts))]
    t0 = time.time()
    # By reference to the importable module, also under `python3 -m` (whose
    # __main__ the workers cannot import).
    from qbert.dask_score import score_partition as task
    # Keys unique to this run: the scheduler answers a key it still holds
    # (an earlier run's, not yet released) with that run's result.
    run_id = uuid.uuid4().hex[:12]
    futures = [client.submit(task, model, args.threads, args.batch, path, fmt, header, part, out,
                             args.on_error == "skip", args.aggregate,
                             key="qbert-part-%05d-%s" % (i, run_id), pure=False)
               for i, (part, out) in enumerate(zip(parts, outs))]
    results = client.gather(futures)
    done = [r for r in results if not r["resumed"]]
    return {"partitions": len(parts), "scored": len(done), "resumed": len(results) - len(done),
            "lines": sum(r["lines"] for r in done), "seconds": time.time() - t0, "outputs": outs}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m qbert.dask_score", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="model directory (every worker reads it)")
    ap.add_argument("--input", required=True, help="JSONL, TSV with a header, or text lines")
    ap.add_argument("--input-format", choices=("text", "jsonl", "tsv"), help="default: from the extension")
    ap.add_argument("--output", required=True, help="directory of part-NNNNN.jsonl files")
    ap.add_argument("--scheduler", help="address of a dask scheduler (default: a LocalCluster)")
    ap.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    ap.add_argument("--threads", type=int, default=1, help="compute threads per worker's model (default 1)")
    ap.add_argument("--batch", type=int, default=8, help="inputs run together, as qbert predict --batch (8)")
    ap.add_argument("--aggregate", choices=("simple",), help="token models: entity spans, as qbert predict's")
    ap.add_argument("--partition-lines", type=int, default=1024, help="inputs per partition (default 1024)")
    ap.add_argument("--on-error", choices=("stop", "skip"), default="stop",
                    help="a bad line: stop the job (finished partitions are kept) or report it in place")
    args = ap.parse_args(argv)
    from dask.distributed import Client, LocalCluster
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        r = run(args, client)
    except RuntimeError as e:
        print("qbert.dask_score: error: %s" % e, file=sys.stderr)
        return 1
    finally:
        client.close()
    print("partitions %d (%d scored, %d kept from an earlier run), %d lines in %.1f s"
          % (r["partitions"], r["scored"], r["resumed"], r["lines"], r["seconds"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
