#!/usr/bin/python3
"""PyTorch's side of the training-speed comparison (bench/compare_train.sh).

Trains the checkpoint with the pure-PyTorch reference (../shared/tools/bert_ref.py)
on the very batches bench_train --dump wrote, doing per step what qbert's
bench_train does: zero_grad, forward with dropout on, mean cross-entropy,
backward, clip_grad_norm_(1.0), AdamW (lr 2e-5, weight decay 0.01 on matrices
only, as qbert).  Prints the same figures as bench_train.

    /usr/bin/python3 bench/train_torch.py MODEL_DIR DUMP [--threads 2] [--steps-warmup 3] [--json]

Needs Debian's python3-torch and numpy.
"""
import argparse
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC, VERSION = 0x42525451, 1


def import_ref(shared):
    sys.path.insert(0, os.path.join(shared, "tools"))
    import bert_ref
    return bert_ref


def read_dump(path):
    """The padded batches as (ids, mask, types, labels) long tensors, built
    before any timing so the steps time the training step alone."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 12:
        sys.exit("%s: too short for a bench_train batch dump" % path)
    magic, version, n = struct.unpack_from("<III", raw, 0)
    if magic != MAGIC or version != VERSION:
        sys.exit("%s: not a bench_train batch dump (magic %#x version %d)" % (path, magic, version))
    off, batches = 12, []
    for _ in range(n):
        if off + 8 > len(raw):
            sys.exit("%s: truncated after %d of %d batches" % (path, len(batches), n))
        B, S = struct.unpack_from("<II", raw, off)
        off += 8
        if off + 4 * (2 * B * S + 2 * B) > len(raw):
            sys.exit("%s: batch %d (%d x %d) is truncated" % (path, len(batches), B, S))
        arr = np.frombuffer(raw, dtype="<i4", count=2 * B * S + 2 * B, offset=off)
        off += 4 * arr.size
        ids = torch.from_numpy(arr[:B * S].astype(np.int64)).view(B, S)
        types = torch.from_numpy(arr[B * S:2 * B * S].astype(np.int64)).view(B, S)
        lens = torch.from_numpy(arr[2 * B * S:2 * B * S + B].astype(np.int64))
        labels = torch.from_numpy(arr[2 * B * S + B:].astype(np.int64))
        mask = (torch.arange(S)[None, :] < lens[:, None]).long()
        batches.append((ids, mask, types, labels))
    if off != len(raw):
        sys.exit("%s: %d trailing bytes after %d batches" % (path, len(raw) - off, n))
    return batches


def make_optimizer(model, lr, weight_decay):
    # qbert decays every matrix (embeddings included), never a bias or a
    # LayerNorm vector: the same split by dimension here.
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)


def step(model, opt, batch):
    ids, mask, types, labels = batch
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(ids, mask, types), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss)


def quantile(sorted_v, q):  # nearest rank, as bench_train
    return sorted_v[int(round(q * (len(sorted_v) - 1)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("dump")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps-warmup", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--shared", default=os.environ.get("QB_SHARED_DIR", os.path.join(HERE, "..", "..", "shared")))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(42)
    ref = import_ref(a.shared)
    batches = read_dump(a.dump)
    model = ref.load_model(a.model_dir, verbose=False)
    opt = make_optimizer(model, 2e-5, 0.01)

    model.eval()  # dropout off: must match qbert's loss on the same batch
    with torch.no_grad():
        ids, mask, types, labels = batches[0]
        eval_loss = float(F.cross_entropy(model(ids, mask, types), labels))
    model.train()
    for i in range(a.steps_warmup):
        step(model, opt, batches[i % len(batches)])
    ms, loss_sum = [], 0.0
    for b in batches:
        t0 = time.perf_counter()
        loss_sum += step(model, opt, b)
        ms.append(1e3 * (time.perf_counter() - t0))

    examples = sum(b[0].shape[0] for b in batches)
    padded = sum(b[0].numel() for b in batches)
    real = sum(int(b[1].sum()) for b in batches)
    seconds = sum(ms) / 1e3
    s = sorted(ms)
    r = {"engine": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
         "batch": max(b[0].shape[0] for b in batches), "batches": len(batches), "examples": examples,
         "mean_padded_len": round(padded / examples, 4), "real_tokens": real, "warmup_steps": a.steps_warmup,
         "eval_loss0": round(eval_loss, 8), "mean_train_loss": round(loss_sum / len(batches), 6),
         "seconds": round(seconds, 4), "examples_per_s": round(examples / seconds, 3),
         "ms_step_median": round(statistics.median(ms), 3), "ms_step_p10": round(quantile(s, 0.1), 3),
         "ms_step_p90": round(quantile(s, 0.9), 3), "ms_step_min": round(s[0], 3), "ms_step_max": round(s[-1], 3)}
    if a.json:
        print(json.dumps(r))
        return
    print("PyTorch %s training: %d threads, batch %d, %d batches, %d examples, mean padded length %.4f "
          "(%d real tokens)" % (r["torch"], r["threads"], r["batch"], r["batches"], examples, padded / examples, real))
    print("  loss of batch 0, dropout off, before training: %.8f" % eval_loss)
    print("  mean training loss over the timed steps: %.6f (dropout on)" % r["mean_train_loss"])
    print("  %.2f examples/s  (%.3f s for %d steps after %d warm-up)"
          % (r["examples_per_s"], seconds, len(batches), a.steps_warmup))
    print("  ms/step: median %.2f, p10 %.2f, p90 %.2f, min %.2f, max %.2f"
          % (r["ms_step_median"], r["ms_step_p10"], r["ms_step_p90"], s[0], s[-1]))


if __name__ == "__main__":
    main()
