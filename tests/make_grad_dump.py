#!/usr/bin/python3
"""Writes the PyTorch gradient dumps that tests/test_grad_torch.c checks qbert's
backward pass against, and the tiny random checkpoints tests/test_grad.c
finite-differences.  Needs Debian's python3-torch; CI only reads the output.

    /usr/bin/python3 tests/make_grad_dump.py [--shared ../shared]

Dump layout (little-endian):
    u32 magic 0x44524751 ("QGRD"), u32 version (1; 2 for task 2, which version-1 readers refuse)
    u32 batch, u32 seq, u32 task (0 sequence, 1 token, 2 masked LM), u32 n_labels
    i32 input_ids[batch*seq], i32 token_type_ids[batch*seq], i32 lengths[batch]
    i32 labels[n_labels]  (sequence: batch; token and masked LM: batch*seq, -100 ignored;
                           masked LM: the original token id at each masked position)
    f32 loss
    u32 n_params, then per parameter:
        u16 name length, name bytes, u32 ndim, i64 shape[ndim]
        u32 rows stored: 0xffffffff = dense (f32 data[numel]); else n, then
            i32 row ids[n], f32 data[n * row length] (every other row is 0)
Embedding tables are stored sparsely: a batch touches few of their rows.
"""
import argparse
import os
import struct
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = 0x44524751

SENTENCES = [
    "a gripping , beautifully acted film",
    "the plot is thin and the jokes fall flat",
    "not bad at all",
    "an utterly forgettable , joyless mess that never finds its footing",
    "warm , funny and surprisingly moving",
]
LABELS = [1, 0, 1, 0, 1]


def import_ref(shared):
    sys.path.insert(0, os.path.join(shared, "tools"))
    import bert_ref
    return bert_ref


def write_dump(path, model, batch, labels, task):
    model.eval()  # dropout off
    model.zero_grad()
    ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
    logits = model(ids, mask, types)
    lab = torch.tensor(labels, dtype=torch.long)
    if task in (1, 2):
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), lab.reshape(-1), ignore_index=-100)
    else:
        loss = F.cross_entropy(logits, lab)
    loss.backward()
    B, S = ids.shape
    out = bytearray()
    out += struct.pack("<IIIIII", MAGIC, 2 if task == 2 else 1, B, S, task, lab.numel())
    out += ids.to(torch.int32).numpy().astype("<i4").tobytes()
    out += types.to(torch.int32).numpy().astype("<i4").tobytes()
    out += mask.sum(1).to(torch.int32).numpy().astype("<i4").tobytes()
    out += lab.reshape(-1).to(torch.int32).numpy().astype("<i4").tobytes()
    out += struct.pack("<f", float(loss))
    params = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    out += struct.pack("<I", len(params))
    for name, p in params:
        g = p.grad.detach().to(torch.float32)
        nb = name.encode()
        out += struct.pack("<H", len(nb)) + nb + struct.pack("<I", g.dim())
        out += struct.pack("<%dq" % g.dim(), *g.shape)
        if "embeddings" in name and g.dim() == 2:
            rows = torch.nonzero(g.abs().sum(1) > 0).flatten()
            out += struct.pack("<I", rows.numel())
            out += rows.to(torch.int32).numpy().astype("<i4").tobytes()
            out += g[rows].contiguous().numpy().astype("<f4").tobytes()
        else:
            out += struct.pack("<I", 0xFFFFFFFF)
            out += g.contiguous().numpy().astype("<f4").tobytes()
    with open(path, "wb") as f:
        f.write(out)
    print("%s: loss %.6f, %d parameters, %d bytes" % (path, float(loss), len(params), len(out)))


def sst2_batch(ref, ckpt):
    tok = ref.load_tokenizer(ckpt)
    encs = [tok.encode(s, max_length=32) for s in SENTENCES]
    return ref.pad_batch(encs)


def tiny_checkpoint(ref, out_dir, cfg, seed):
    """Random weights at a larger scale than HF's init (std 0.3, LayerNorm
    weights around 1) so every gradient is well away from zero."""
    os.makedirs(out_dir, exist_ok=True)
    model = ref._CLASSES[cfg["architectures"][0]](cfg)
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    for name, t in sd.items():
        if not t.is_floating_point():
            continue
        noise = torch.randn(t.shape, generator=g) * 0.3
        t.copy_(noise + 1.0 if "LayerNorm" in name and name.endswith("weight") else noise)
    ref.save_safetensors(sd, os.path.join(out_dir, "model.safetensors"), {"format": "pt"})
    import json
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        for t in ref.synthetic_vocab(cfg["vocab_size"]):
            f.write(t + "\n")
    return out_dir


TINY_COMMON = {
    "vocab_size": 240, "hidden_size": 8, "num_attention_heads": 2, "intermediate_size": 12,
    "max_position_embeddings": 16, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
}
TINY = {
    "tiny-bert-seq": dict(TINY_COMMON, model_type="bert", architectures=["BertForSequenceClassification"],
                          num_hidden_layers=2, hidden_act="gelu",
                          id2label={"0": "a", "1": "b", "2": "c"}),
    "tiny-bert-token": dict(TINY_COMMON, model_type="bert", architectures=["BertForTokenClassification"],
                            num_hidden_layers=2, hidden_act="gelu",
                            id2label={"0": "O", "1": "B-X", "2": "I-X", "3": "B-Y"}),
    "tiny-albert-seq": dict(TINY_COMMON, model_type="albert", architectures=["AlbertForSequenceClassification"],
                            num_hidden_layers=3, embedding_size=6, num_hidden_groups=1, inner_group_num=1,
                            hidden_act="gelu_new", classifier_dropout_prob=0.1,
                            id2label={"0": "a", "1": "b"}),
    # the decoder is tied to the word embeddings (tie_word_embeddings defaults to true)
    "tiny-bert-mlm": dict(TINY_COMMON, model_type="bert", architectures=["BertForMaskedLM"],
                          num_hidden_layers=2, hidden_act="gelu"),
}
# masked positions of tiny_batch() and the ids they held (the [MASK]-ed inputs need not be [MASK]:
# the loss reads only the labels); one row without any mask
MLM_LABELS = [[-100, 37, -100, 170, -100, -100, -100], [-100, -100, -100, -100, -100, -100, -100],
              [-100, 5, -100, 211, 220, -100, 239]]


def tiny_batch():
    ids = [[101, 150, 160, 170, 102, 0, 0], [101, 180, 102, 0, 0, 0, 0], [101, 190, 200, 210, 220, 230, 102]]
    lens = [5, 3, 7]
    mask = [[1 if i < n else 0 for i in range(7)] for n in lens]
    types = [[0, 0, 0, 1, 1, 0, 0], [0] * 7, [0, 0, 0, 0, 1, 1, 1]]
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
            "token_type_ids": torch.tensor(types)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "shared"))
    ap.add_argument("--out", default=os.path.join(HERE, "data"))
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    ref = import_ref(a.shared)
    os.makedirs(a.out, exist_ok=True)
    # seeds follow the original three checkpoints' order, so their files do not change
    order = ["tiny-albert-seq", "tiny-bert-seq", "tiny-bert-token", "tiny-bert-mlm"]
    for i, name in enumerate(order):
        cfg = TINY[name]
        d = tiny_checkpoint(ref, os.path.join(a.out, name), cfg, seed=i + 1)
        model = ref.load_model(d, verbose=False)
        batch = tiny_batch()
        if "mlm" in name:
            write_dump(os.path.join(a.out, "grad-dump-%s.bin" % name), model, batch, MLM_LABELS, 2)
        elif "token" in name:
            labels = [[-100, 1, 2, 0, -100, -100, -100], [-100, 3, -100, -100, -100, -100, -100],
                      [-100, 0, 1, -100, 2, 3, -100]]
            write_dump(os.path.join(a.out, "grad-dump-%s.bin" % name), model, batch, labels, 1)
        else:
            labels = [1, 0, 1] if len(cfg["id2label"]) == 2 else [2, 0, 1]
            write_dump(os.path.join(a.out, "grad-dump-%s.bin" % name), model, batch, labels, 0)
    for name, short in (("bert-mini-sst2", "bert-mini"), ("albert-mini-sst2", "albert-mini")):
        ckpt = os.path.join(a.shared, "models", name)
        model = ref.load_model(ckpt, verbose=False)
        write_dump(os.path.join(a.out, "grad-dump-%s.bin" % short), model, sst2_batch(ref, ckpt), LABELS, 0)


if __name__ == "__main__":
    main()
