#!/usr/bin/env python3
"""What the NaN/Inf check at load costs (issue 17, bar 4).

  bench/nonfinite_cost.py [QBERT] [MODEL_DIR] [--rounds N]

Interleaves, N rounds, each starting one step later than the last: `qbert
info MODEL` with the check reading the file (no stamp cache), with the file
stamped by an earlier check (the cache in a temporary directory), with the
check off (--allow-nonfinite), and a reference scan of the same data, numpy's
isfinite over the mmapped file.  `info` maps FP32 weights without reading
them, so the check is the only thing that reads them; the reference shows
what reading them costs anywhere.  Prints medians, range, and the CPU.
"""
import os, resource, statistics, struct, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent.parent
args = [a for a in sys.argv[1:] if not a.startswith("--")]
rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 11
if "--rounds" in sys.argv:
    args.remove(str(rounds))
qbert = args[0] if args else str(HERE / "build/qbert")
model = args[1] if len(args) > 1 else str(Path.home() / ".cache/qbert/random-models/bert-base")
weights = Path(model) / "model.safetensors"


def timed(f):
    """Wall seconds and, for a child process, its CPU seconds (which a busy machine inflates less)."""
    t, r = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    f()
    r2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t, (r2.ru_utime - r.ru_utime) + (r2.ru_stime - r.ru_stime)


cache = tempfile.TemporaryDirectory()


def info(extra, cache_dir=""):
    env = dict(os.environ, QBERT_CACHE_DIR=cache_dir)
    subprocess.run([qbert, "info", model] + extra, stdout=subprocess.DEVNULL, check=True, env=env)


def reference_scan():
    with open(weights, "rb") as fh:
        header = struct.unpack("<Q", fh.read(8))[0]
    data = np.memmap(weights, dtype=np.uint8, mode="r", offset=8 + header)
    return bool(np.isfinite(data[: data.size // 4 * 4].view(np.float32)).all())


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# {cpu}; {weights} ({weights.stat().st_size / 1e6:.0f} MB); {rounds} rounds")
info([], cache.name)  # stamps the file (if it is older than 10 s)
if not os.listdir(os.path.join(cache.name, "checked")):
    sys.exit(f"{weights}: not stamped (changed in the last 10 s?); run again later")
runs = {"info, check reads": [], "info, file stamped": [], "info, --allow-nonfinite": [], "numpy isfinite scan": []}
steps = [lambda: info([]), lambda: info([], cache.name), lambda: info(["--allow-nonfinite"]), reference_scan]
for r in range(rounds):  # each round starts one step later: no step always follows the same one
    for i in range(len(steps)):
        k = (r + i) % len(steps)
        runs[list(runs)[k]].append(timed(steps[k]))
med = {}
for name, v in runs.items():
    wall, cpu = [w for w, _ in v], [c for _, c in v]
    med[name] = statistics.median(wall), statistics.median(cpu)
    line = f"{name:26s} wall median {1e3 * med[name][0]:7.2f} ms (range {1e3 * min(wall):.2f}-{1e3 * max(wall):.2f})"
    print(line + (f"  CPU median {1e3 * med[name][1]:7.2f} ms" if name != "numpy isfinite scan" else ""))
(read, read_c), (stamped, stamped_c), (off, off_c), (ref, _) = med.values()
for what, t, c in (("reading the file", read, read_c), ("with a stamp", stamped, stamped_c)):
    print(f"the check {what} adds {100 * (t - off) / off:.1f}% of info's wall time without it, "
          f"{100 * (c - off_c) / off_c:.1f}% of its CPU time (bar: 5%)")
print(f"the reference scan alone takes {100 * ref / off:.0f}% of info's wall time without the check")
