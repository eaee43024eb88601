#!/usr/bin/python3
"""Writes docs/arm64.md's measured sections from the AArch64 build.

  scripts/arm64_report.py [BUILD_ARM64] [--no-qemu] > docs/arm64.md

1. Instruction mix: each GEMM kernel object is disassembled
   (aarch64-linux-gnu-objdump); its hottest loop is the backward branch's
   address range holding the most multiply-accumulates.  Over that range:
   multiply-accumulates (lanes x depth per instruction), bytes loaded (by
   register size) and their ratio, against the best ratio a register tile
   of that instruction reaches in the 32 vector registers (the same
   operand scheme, searched over tile shapes).
2. qemu's run time of `qbert bench` per level under one emulated CPU (max),
   relative to scalar: a sanity check that each level runs its own kernels,
   NOT a speed figure (qemu translates each vector instruction into many
   host instructions, in proportions unlike any real core's), and the
   peak RSS of a one-sentence INT8 predict under qemu.  --no-qemu leaves
   both out.  The rest of the page is this file's TEXT.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJDUMP = "aarch64-linux-gnu-objdump"
QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]

# (level, kernel, object file, the tile the code uses, register model key)
KERNELS = [
    ("neon", "FP32 GEMM (fmla by element)", "gemm_f32_neon.c.o", "8 x 8", "fmla"),
    ("neon", "INT8 GEMM (smlal, int8 weights widened as loaded)", "gemm_i8_neon.c.o", "5 x 16", "smlal"),
    ("dotprod", "INT8 GEMM (sdot)", "gemm_i8_dotprod.c.o", "4 x 16", "sdot"),
    ("i8mm", "INT8 GEMM (usmmla)", "gemm_i8_i8mm.c.o", "8 x 8", "usmmla"),
    ("neon", "W4A8 (smlal over a decoded run, a lane per k mod 4)", "lowbit_neon.c.o", "2 x 8", "smlal_lanes"),
    ("dotprod, i8mm", "W4A8 (sdot over a decoded run)", "lowbit_dotprod.c.o", "4 x 16", "sdot"),
]

MAC_DEPTH = {"fmla": 1, "fmadd": 1, "smlal": 1, "smlal2": 1, "umlal": 1, "umlal2": 1, "mla": 1,
             "sdot": 4, "udot": 4, "usdot": 4, "smmla": 8, "ummla": 8, "usmmla": 8}
LANES = {"4s": 4, "2s": 2, "8h": 8, "4h": 4, "2d": 2}
REG_BYTES = {"q": 16, "d": 8, "s": 4, "h": 2, "b": 1, "x": 8, "w": 4}
ARR_BYTES = {"16b": 16, "8b": 8, "8h": 16, "4h": 8, "4s": 16, "2s": 8, "2d": 16, "1d": 8}
BRANCH = re.compile(r"^(b|b\.\w+|cbn?z|tbn?z)$")


def disassemble(obj):
    out = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", obj], capture_output=True, text=True,
                         check=True).stdout
    insns = []
    for line in out.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if m:
            insns.append((int(m.group(1), 16), m.group(2), m.group(3).split("//")[0].strip()))
    return insns


def macs_of(mn, ops):
    if mn not in MAC_DEPTH:
        return 0
    if mn == "fmadd":
        return 1
    arr = re.search(r"v\d+\.(\d+[bhsd])", ops)
    if mn in ("smmla", "ummla", "usmmla"):
        return 32  # a 2 x 2 block of 8-deep dot products
    return LANES.get(arr.group(1), 0) * MAC_DEPTH[mn] if arr else 0


def load_bytes(mn, ops):
    if not mn.startswith("ld"):
        return 0
    if mn.startswith("ld1") or mn.startswith("ld2") or mn.startswith("ld4"):
        regs = re.findall(r"v\d+\.(\w+)", ops.split("[")[0] if "}[" not in ops else ops)
        if re.search(r"\}\[\d+\]", ops):  # one lane
            return {"b": 1, "h": 2, "s": 4, "d": 8}[regs[0][-1]]
        if mn.startswith("ld1r"):
            return {"b": 1, "h": 2, "s": 4, "d": 8}[regs[0][-1]]
        return sum(ARR_BYTES.get(r, 0) for r in regs)
    first = ops.split(",")[0].strip()
    size = REG_BYTES.get(first[:1], 0)
    if mn in ("ldrb", "ldrsb", "ldurb"):
        size = 1
    elif mn in ("ldrh", "ldrsh", "ldurh"):
        size = 2
    elif mn == "ldrsw":
        size = 4
    return size * (2 if mn.startswith("ldp") else 1)


def hottest_loop(insns):
    """(macs, bytes, instructions, mac instructions) over the innermost
    loop (a backward branch's address range holding no smaller such loop
    with multiply-accumulates) that has the most multiply-accumulates."""
    index = {a: i for i, (a, _, _) in enumerate(insns)}
    loops = []
    for i, (addr, mn, ops) in enumerate(insns):
        tgt = re.search(r"\b([0-9a-f]+) <", ops)
        if BRANCH.match(mn) and tgt and int(tgt.group(1), 16) < addr and int(tgt.group(1), 16) in index:
            body = insns[index[int(tgt.group(1), 16)]:i + 1]
            if any(macs_of(m, o) for _, m, o in body):
                loops.append((index[int(tgt.group(1), 16)], i, body))
    best = (0, 0, 0, 0)
    for lo, hi, body in loops:
        if any(lo <= l2 and h2 <= hi and (l2, h2) != (lo, hi) for l2, h2, _ in loops):
            continue
        macs = sum(macs_of(m, o) for _, m, o in body)
        if macs > best[0]:
            best = (macs, sum(load_bytes(m, o) for _, m, o in body), len(body),
                    sum(1 for _, m, o in body if macs_of(m, o)))
    return best


def best_tile(model):
    """Best multiply-accumulates per loaded byte of a register tile in 32
    vector registers, and its shape (rows x columns)."""
    best = (0.0, "")
    for mr in range(1, 25):
        for nr in range(1, 49):
            if model == "fmla":  # A read in place, 4 k per register; B: nr floats per k
                if nr % 4: continue
                regs, macs, byts = mr * nr // 4 + mr + nr // 4, mr * nr, 4 * (mr + nr)
            elif model == "smlal":  # A u8, 8 k per register; W int8, 16 per load, widened to 2 int16 registers
                if nr % 16: continue
                regs, macs, byts = mr * nr // 4 + mr + nr // 8 + nr // 16, mr * nr, mr + nr
            elif model == "smlal_lanes":  # per 4 k: a 4-lane accumulator per row and column, W 2 columns per int16
                if nr % 2: continue
                regs, macs, byts = mr * nr + mr + nr // 2, 4 * mr * nr, 4 * (mr + nr)
            elif model == "sdot":  # per 4 k: A 4 bytes per row (16 k per register), W 4 bytes per column
                if nr % 4: continue
                regs, macs, byts = mr * nr // 4 + mr + nr // 4, 4 * mr * nr, 4 * (mr + nr)
            else:  # usmmla, per 8 k: rows and columns in pairs
                if mr % 2 or nr % 2: continue
                regs, macs, byts = mr * nr // 4 + mr // 2 + nr // 2, 8 * mr * nr, 8 * (mr + nr)
            if regs <= 32 and macs / byts > best[0]:
                best = (macs / byts, f"{mr} x {nr}")
    return best


def bench_ms(qbert, model, isa):
    env = dict(os.environ, QEMU_CPU="max", QBERT_ISA=isa)
    out = subprocess.run(QEMU + [qbert, "bench", model, "--seq", "32", "--batch", "1", "--runs", "5", "--threads",
                                 "1", "--json"], capture_output=True, text=True, env=env, check=True).stdout
    rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return min(r["p50_ms"] for r in rows if "p50_ms" in r)


TEXT = """## Levels

One binary (`make cross-arm64`, `build-arm64/qbert`) runs on every ARMv8 Linux board; it reads
`getauxval(AT_HWCAP)` / `AT_HWCAP2` when a model loads and takes the best level the core has
(`QBERT_ISA=scalar|neon|dotprod|i8mm` forces one).  Each level's kernels live in their own
files, compiled with that level's `-march` only.

| level | needs (HWCAP) | compiled with | cores it targets | kernels |
|---|---|---|---|---|
| neon | asimd | `-march=armv8-a` | Cortex-A53/A55 (Raspberry Pi 3, most phones' little cores), A72 (Pi 4), A73 | FP32 GEMM 8x8 `fmla` by element; INT8 `smlal` (int8 weights widened as loaded); softmax, LayerNorm, GELU, tanh, quantizers; FP16 `fcvtl` / BF16 widening; W4A8 `smlal` 2x8 tiles over runs of a group decoded per 16 columns |
| dotprod | + asimddp | `-march=armv8.2-a+dotprod` | Cortex-A55/A75/A76 (Pi 5), A77, A78, Neoverse N1 (Graviton 2) | INT8 `sdot` (A lowered by 128, added back in the epilogue); W4A8 `sdot` 4x16 tiles over decoded runs (A lowered by 128, added back per group from the run's weight sums) |
| i8mm | + i8mm | `-march=armv8.2-a+dotprod+i8mm` | Cortex-A510/A710/X2 and later, Neoverse V1/N2 (Graviton 3) | INT8 `usmmla` (u8 x s8, no sign trick); W4A8 as dotprod |

FP16 (`fphp`/`asimdhp`) and BF16 arithmetic are not used: half-precision weights are widened
once per chunk to FP32 (`fcvtl` is ARMv8.0), so every level computes them, and the widened
FP32 GEMM is the same code everywhere.  Integer results are identical to the scalar
reference at every level (the kernel suites check them bit for bit).

## Building and testing

`make cross-arm64` builds `build-arm64/` with `cmake/aarch64-linux-gnu.cmake` (Debian's
gcc-aarch64-linux-gnu; utf8proc and jansson from Debian's arm64 packages, unpacked by
`scripts/install-deps.sh --arm64` into `build-arm64/sysroot` and linked statically; OpenMP is
the cross compiler's libgomp).  `make test-arm64` runs `scripts/test-arm64.sh`: under
qemu-aarch64 with `-cpu cortex-a53`, `cortex-a76` and `max`, it first checks that qbert picks
neon, dotprod and i8mm by itself, then runs the kernel suites (that level against the scalar
reference: integer paths bit for bit), the tokenizer goldens and the golden logits of the
four trained models (within 1e-4) with QBERT_ISA at that level, and the same once on scalar.
CI runs `make test-arm64 ARM64_SUITES=quick`: the three levels, the kernel suites with the
sanitizer runs' smaller low-bit shapes, the WordPiece/SentencePiece tokenizer goldens and
bert-mini-sst2's golden logits.  Plain C is compiled with `-ffp-contract=off` on AArch64,
as baseline x86-64 compiles it (no FMA there), so the scalar reference rounds the same on
both; the NEON files fuse where their intrinsics say.

## Small boards

A session allocates everything once for its largest batch and length
(`qb_session_params.max_batch`, `max_seq`; `predict --batch B --max-length L`).
`qbert info MODEL --max-batch B --max-length L [--threads N]` prints what running the model
with that session takes (`qb_model_resident` and `qb_session_bytes`; `memory_bytes` in
`--json`): the weights the load copied (packed int8 and low-bit weights, converted tensors),
the pages of model.safetensors every run reads whole (FP32 weights, biases, norms), counted in
Linux's 64 KiB fault-around windows since a read fault also maps its page-cache neighbours,
the first L position rows (the word table's rows are read with pread, which maps none of
them, except where a tied MLM head reads the whole table), the tokenizer's tables, and the
session.  Not counted: the process's own code, libc and thread stacks.  Loading reads the
whole file (the non-finite check, the packing) and then drops every mapped page, so only what
runs read comes back.

"What it then uses" is measured as the peak RSS of `qbert bench MODEL --batch B --seq L
--threads 1` (a session of exactly B x L, every row full of random tokens, so every buffer
is touched) less the process's own baseline, both from GNU time's `%M`.  The baseline is
the same bench on a model of a few KB of weights (`tests/data/tiny-bert-seq`, quantized
as the model measured is) less that model's prediction: it holds the code a run touches
(the loader, the tokenizer, the format's kernels), which `qbert --version` alone misses by
about 0.8 MB, 7% of a small INT8 model.  `tests/test_memory.sh` measures both and requires
the prediction within 10% for bert-mini-sst2 FP32 and INT8 (dynamic) at batch 1 and 32,
length 128 (x86, 2-vCPU Intel Xeon: ratios predicted/used 1.004, 1.000, 0.997, 0.995).
Real text repeats tokens and a predict batch is padded to its longest text only, so a run on
real input uses less than `info` says: the figure is what a full batch takes.
"""


def peak_rss_mib(cmd, cpu):
    """Peak RSS of cmd under qemu-aarch64 -cpu cpu, from GNU time's %M."""
    with tempfile.NamedTemporaryFile() as f:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name] + QEMU + ["-cpu", cpu] + cmd, check=True,
                       capture_output=True)
        return int(open(f.name).read().split()[-1]) / 1024


def small_board_sentence(qbert, q8):
    used = peak_rss_mib([qbert, "predict", q8, "a gripping, funny and moving film"], "max")
    idle = peak_rss_mib([qbert, "--version"], "max")
    return (f"bert-mini INT8 `predict` of one sentence (defaults: batch 8, length 512) peaks at {used:.1f} MiB\n"
            f"RSS under `qemu-aarch64 -cpu max`, of which {idle:.1f} MiB is qemu and the binary doing nothing\n"
            "(`qbert --version`).")


def host_line():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return f"(Measured on {cpu}, {os.cpu_count()} vCPUs, load average {os.getloadavg()[0]:.1f} at the start.)"


def print_instruction_mix(objs):
    p = print
    p("## Instruction mix of the inner loops\n")
    p("Static count over each kernel's hottest loop (`aarch64-linux-gnu-objdump -d`): multiply-")
    p("accumulates (a lane of `fmla`/`smlal` is 1, of `sdot` 4, a `usmmla` 32) per byte the loop loads.")
    p("\"Best\" is the highest ratio a register tile of the same instruction and operand scheme reaches")
    p("in 32 vector registers (accumulators + one k-step's operands), searched over tile shapes.\n")
    p("| level | kernel | tile | loop: instructions | MAC instructions | MACs | bytes loaded | MACs / byte | best (tile) |")
    p("|---|---|---|---|---|---|---|---|---|")
    for level, name, obj, tile, model in KERNELS:
        path = os.path.join(objs, obj)
        if not os.path.exists(path):
            continue
        macs, byts, n, nmac = hottest_loop(disassemble(path))
        ratio = f"{macs / byts:.2f}" if byts else "-"
        best = best_tile(model) if model else None
        best_s = f"{best[0]:.2f} ({best[1]})" if best else "-"
        p(f"| {level} | {name} | {tile} | {n} | {nmac} | {macs} | {byts} | {ratio} | {best_s} |")
    p("")


def print_qemu_times(qbert, models, host):
    p = print
    p("## qemu run time per level (a sanity check, not a speed figure)\n")
    p("`qbert bench MODEL --seq 32 --batch 1 --threads 1` under `qemu-aarch64 -cpu max`, each level")
    p("forced with QBERT_ISA, median of 5 runs, relative to scalar.  qemu emulates every vector")
    p("instruction with several host instructions and has no caches or pipelines, so these ratios")
    p("say only that each level runs its own kernels; they predict nothing about a real core.  The")
    p("three levels share the FP32 kernels, so the spread of their FP32 ratios is the host's noise.\n")
    p("| model | scalar ms | neon | dotprod | i8mm |")
    p("|---|---|---|---|---|")
    for label, m in models:
        t = {isa: bench_ms(qbert, m, isa) for isa in ("scalar", "neon", "dotprod", "i8mm")}
        p(f"| {label} | {t['scalar']:.1f} | " + " | ".join(f"{t[i] / t['scalar']:.2f}x" for i in
                                                        ("neon", "dotprod", "i8mm")) + " |")
    p("\n" + host)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    build = args[0] if args else os.path.join(ROOT, "build-arm64")
    objs = os.path.join(build, "CMakeFiles", "qbert.dir", "src", "kernels")
    qemu = "--no-qemu" not in sys.argv
    qbert = os.path.join(build, "qbert")
    model = os.path.join(ROOT, "models", "bert-mini-sst2")
    tmp = tempfile.mkdtemp()
    try:
        q8, q4 = os.path.join(tmp, "q8"), os.path.join(tmp, "q4")
        if qemu:
            host = host_line()
            for out, extra in ((q8, []), (q4, ["--bits", "4"])):
                subprocess.run(QEMU + [qbert, "quantize", model, "-o", out, "--method", "dynamic"] + extra,
                               check=True, capture_output=True)
        print("# qbert on 64-bit ARM\n")
        print("<!-- Written by scripts/arm64_report.py from the cross build. -->\n")
        print(TEXT + (small_board_sentence(qbert, q8) + "\n" if qemu else ""))
        print_instruction_mix(objs)
        if qemu:
            print_qemu_times(qbert, (("bert-mini FP32", model), ("bert-mini INT8 dynamic", q8),
                                     ("bert-mini W4A8 dynamic (`--bits 4`)", q4)), host)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
