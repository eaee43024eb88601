"""qbert.dask_score on a LocalCluster of 2 workers: the parts concatenated
equal `qbert predict --input FILE --json` byte for byte; with a worker
killed mid-run too; a rerun keeps finished parts; another job's output
directory is refused; a token model's JSONL (pairs, --aggregate simple) and
a multi-label model's scores too.
usage: test_dask.py MODEL_DIR DATA.tsv SCRATCH [TOKEN_MODEL_DIR CONLL.txt]"""
import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time

from dask.distributed import Client, LocalCluster

from qbert import dask_score

failed = 0


def check(what, ok):
    global failed
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    failed += not ok


def joined(out):
    return b"".join(open(p, "rb").read() for p in sorted(glob.glob(os.path.join(out, "part-*.jsonl"))))


def predict_json(model, data, *extra):
    return subprocess.run([os.environ["QBERT_BIN"], "predict", model, "--input", data, "--json", "--threads", "1",
                           *extra], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout


def first_difference(got, want):
    """The first line where got and want differ, to stderr (nothing if equal)."""
    for i, (g, w) in enumerate(zip(got.splitlines(), want.splitlines())):
        if g != w:
            print("  line %d\n  got  %s\n  want %s" % (i + 1, g[:400], w[:400]), file=sys.stderr)
            return
    if len(got) != len(want):
        print("  lengths differ: %d vs %d bytes" % (len(got), len(want)), file=sys.stderr)


def multi_label(model, tmp):
    """model read as problem_type multi_label_classification (sigmoid scores)."""
    d = os.path.join(tmp, "multi-label")
    os.makedirs(d)
    for f in ("model.safetensors", "vocab.txt", "tokenizer_config.json"):
        os.symlink(os.path.abspath(os.path.join(model, f)), os.path.join(d, f))
    with open(os.path.join(model, "config.json")) as f:
        config = json.load(f)
    config["problem_type"] = "multi_label_classification"
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
    return d


def conll_jsonl(conll, path, n=24):
    """n CoNLL sentences as JSONL, every third with the next as its text_pair."""
    sents, words = [], []
    with open(conll, encoding="utf-8") as f:
        for line in f:
            if line.strip() and not line.startswith("-DOCSTART-"):
                words.append(line.split()[0])
            elif words:
                sents.append(" ".join(words))
                words = []
            if len(sents) == n + 1:
                break
    with open(path, "w", encoding="utf-8") as f:
        for k in range(n):
            o = {"id": k, "text": sents[k]}
            if k % 3 == 0:
                o["text_pair"] = sents[k + 1]
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    return path


def main(model, data, tmp, token_model=None, conll=None):
    """Under `if __name__`: the workers, spawned, import this file again."""
    want = predict_json(model, data)

    def args(out, **kw):
        a = dict(model=model, input=data, input_format=None, output=out, threads=1, batch=8, partition_lines=16,
                 on_error="stop", aggregate=None)
        a.update(kw)
        return argparse.Namespace(**a)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        out = os.path.join(tmp, "plain")
        r = dask_score.run(args(out), client)
        check("%d partitions, byte-identical to one qbert predict --json" % r["partitions"],
              r["partitions"] > 4 and joined(out) == want)

        # A rerun keeps every finished part; a lost part is scored again.
        first = os.path.join(out, "part-00001.jsonl")
        before = os.stat(first).st_mtime_ns
        os.remove(os.path.join(out, "part-00003.jsonl"))
        r = dask_score.run(args(out), client)
        check("resume: one part scored, the rest kept (%d, %d)" % (r["scored"], r["resumed"]),
              r["scored"] == 1 and r["resumed"] == r["partitions"] - 1 and os.stat(first).st_mtime_ns == before)
        check("resume: byte-identical", joined(out) == want)
        try:
            dask_score.run(args(out, batch=4), client)
            check("another job in the same --output is refused", False)
        except SystemExit as e:
            check("another job in the same --output is refused: %s" % e, "batch" in str(e))

        # Kill a worker once the first part is written; the job still completes.
        out = os.path.join(tmp, "killed")
        result = {}
        t = threading.Thread(target=lambda: result.update(dask_score.run(args(out), client)))
        t.start()
        deadline = time.time() + 120
        while not glob.glob(os.path.join(out, "part-*.jsonl")) and time.time() < deadline:
            time.sleep(0.05)
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        at_kill = len(glob.glob(os.path.join(out, "part-*.jsonl")))
        t.join(300)
        n = result.get("partitions", -1)
        parts = len(glob.glob(os.path.join(out, "part-*.jsonl")))
        check("killed a worker mid-run (%d of %d parts written when it died)" % (at_kill, n), 0 < at_kill < n)
        check("after the kill: byte-identical", joined(out) == want and parts == n)
        check("no temporary files left", not glob.glob(os.path.join(out, "*.tmp-*")))

        cases = [("multi-label (sigmoid scores)", multi_label(model, tmp), data, None)]
        if token_model and os.path.isdir(token_model) and os.path.exists(conll or ""):
            jsonl = conll_jsonl(conll, os.path.join(tmp, "conll.jsonl"))
            cases += [("token model, pairs", token_model, jsonl, None),
                      ("token model, --aggregate simple", token_model, jsonl, "simple")]
        for k, (what, m, path, aggregate) in enumerate(cases):
            out = os.path.join(tmp, "case-%d" % k)
            r = dask_score.run(args(out, model=m, input=path, batch=4, partition_lines=8, aggregate=aggregate), client)
            cli_out = predict_json(m, path, "--batch", "4", *(("--aggregate", aggregate) if aggregate else ()))
            got = joined(out)
            check("%s: %d partitions, byte-identical" % (what, r["partitions"]), r["partitions"] > 1 and got == cli_out)
            first_difference(got, cli_out)


if __name__ == "__main__":
    main(*sys.argv[1:6])
    print("test_dask.py: %d failed" % failed)
    sys.exit(1 if failed else 0)
