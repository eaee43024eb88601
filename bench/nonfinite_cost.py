#!/usr/bin/env python3
"""What the NaN/Inf check at load costs (issue 17, bar 4).

  bench/nonfinite_cost.py [QBERT] [MODEL_DIR] [--rounds N]

Interleaves, N rounds: `qbert info MODEL` (the check on), `qbert info MODEL
--allow-nonfinite` (off), and a reference scan of the same data, numpy's
isfinite over the mmapped file.  `info` maps FP32 weights without reading
them, so the check is the only thing that reads them; the reference shows
what reading them costs anywhere.  Prints medians, range, and the CPU.
"""
import statistics, struct, subprocess, sys, time
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
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def info(extra):
    subprocess.run([qbert, "info", model] + extra, stdout=subprocess.DEVNULL, check=True)


def reference_scan():
    with open(weights, "rb") as fh:
        header = struct.unpack("<Q", fh.read(8))[0]
    data = np.memmap(weights, dtype=np.uint8, mode="r", offset=8 + header)
    return bool(np.isfinite(data[: data.size // 4 * 4].view(np.float32)).all())


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"# {cpu}; {weights} ({weights.stat().st_size / 1e6:.0f} MB); {rounds} rounds")
runs = {"info, check on": [], "info, --allow-nonfinite": [], "numpy isfinite scan": []}
for _ in range(rounds):
    runs["info, check on"].append(timed(lambda: info([])))
    runs["info, --allow-nonfinite"].append(timed(lambda: info(["--allow-nonfinite"])))
    runs["numpy isfinite scan"].append(timed(reference_scan))
for name, v in runs.items():
    print(f"{name:26s} median {1e3 * statistics.median(v):7.1f} ms  (range {1e3 * min(v):.1f}-{1e3 * max(v):.1f})")
on, off, ref = (statistics.median(v) for v in runs.values())
print(f"the check adds {1e3 * (on - off):.1f} ms = {100 * (on - off) / off:.0f}% of info without it "
      f"(bar: 5%); the reference scan alone is {100 * ref / off:.0f}%")
