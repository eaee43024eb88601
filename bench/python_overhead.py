"""Per-call overhead of the Python binding over the C API on one short
sentence (issue #20, bar 2: at most 10%).  Rounds alternate the C loop
(build/bench_call, its own process) and the binding's predict() in this
process, so background load hits both alike; prints the median per-call
time of each and their ratio.
usage: /usr/bin/python3 bench/python_overhead.py [MODEL_DIR] [--threads N] [--rounds R] [--calls C]"""
import argparse
import os
import statistics
import subprocess
import sys
import time

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(SRC, "python"))
os.environ.setdefault("QBERT_LIB", os.path.join(SRC, "build", "libqbert.so"))
import qbert  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("model", nargs="?", default=os.path.join(SRC, "models", "bert-mini-sst2"))
ap.add_argument("--text", default="a gripping, beautifully acted film")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--rounds", type=int, default=9)
ap.add_argument("--calls", type=int, default=300)
a = ap.parse_args()

m = qbert.Model(a.model, threads=a.threads)
for _ in range(10):
    m.predict([a.text])
c_us, py_us = [], []
for r in range(a.rounds):
    out = subprocess.run([os.path.join(SRC, "build", "bench_call"), a.model, a.text, str(a.calls), str(a.threads)],
                         stdout=subprocess.PIPE, check=True).stdout
    c_us.append(float(out))
    t = []
    for _ in range(a.calls):
        t0 = time.perf_counter()
        m.predict([a.text])
        t.append((time.perf_counter() - t0) * 1e6)
    py_us.append(statistics.median(t))
ratios = [p / c for p, c in zip(py_us, c_us)]
print("model %s, threads %d, %d rounds x %d calls" % (os.path.basename(a.model), a.threads, a.rounds, a.calls))
print("C API   median %.1f us/call (rounds: %s)" % (statistics.median(c_us), " ".join("%.0f" % x for x in c_us)))
print("Python  median %.1f us/call (rounds: %s)" % (statistics.median(py_us), " ".join("%.0f" % x for x in py_us)))
print("overhead: median of per-round ratios %.3f (%+.1f%%)" % (statistics.median(ratios),
                                                                100 * (statistics.median(ratios) - 1)))
