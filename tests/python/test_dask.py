"""qbert.dask_score on a LocalCluster of 2 workers: the parts concatenated
equal `qbert predict --input FILE --json` byte for byte; with a worker
killed mid-run too; a rerun keeps finished parts; another job's output
directory is refused.  usage: test_dask.py MODEL_DIR DATA.tsv SCRATCH"""
import argparse
import glob
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


def main(model, data, tmp):
    """Under `if __name__`: the workers, spawned, import this file again."""
    want = subprocess.run([os.environ["QBERT_BIN"], "predict", model, "--input", data, "--json", "--threads", "1"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True).stdout

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


if __name__ == "__main__":
    main(*sys.argv[1:4])
    print("test_dask.py: %d failed" % failed)
    sys.exit(1 if failed else 0)
