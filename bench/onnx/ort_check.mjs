#!/usr/bin/env node
// Runs a qbert ONNX export in onnxruntime-node on the ids qbert itself used,
// and compares with qbert's own outputs.
//
//   node ort_check.mjs --model M.onnx --qbert PRED.jsonl [--batch B] [--threads N] [--labels TSV]
//
// PRED.jsonl: `qbert predict --json` lines (input_ids, token_type_ids, logits
// or token_logits), `qbert embed` lines (input_ids, embedding; token types
// zero) or `qbert fill-mask --json` lines (input_ids, masks: the top
// tokens' logits at each mask, compared with ORT's at those tokens;
// agreement of the first).
// Examples run in padded batches of B (default 4, so the attention mask is
// exercised).  Prints one JSON object: examples, max_abs_diff of the logits
// (real tokens only for token models), agreement of the argmaxes (per token
// for token models), accuracy of ORT and of qbert against the last column of
// TSV (header skipped) when given, and ORT's run time.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const ort = require(path.join(here, "node_modules", "onnxruntime-node"));

function args(argv) {
  const a = { batch: 4, threads: 2 };
  for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, "")] = argv[i + 1];
  a.batch = Number(a.batch), a.threads = Number(a.threads);
  return a;
}

const argmax = (v) => v.reduce((best, x, i) => (x > v[best] ? i : best), 0);

async function main() {
  const a = args(process.argv.slice(2));
  const rows = fs.readFileSync(a.qbert, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all",
  });
  const out = session.outputNames.includes("logits") ? "logits" : "sentence_embedding";
  let maxDiff = 0, agree = 0, compared = 0, ms = 0;
  const ortPred = [];
  for (let at = 0; at < rows.length; at += a.batch) {
    const batch = rows.slice(at, at + a.batch), B = batch.length;
    const S = Math.max(...batch.map((r) => r.input_ids.length));
    const ids = new BigInt64Array(B * S), mask = new BigInt64Array(B * S), types = new BigInt64Array(B * S);
    batch.forEach((r, b) => r.input_ids.forEach((id, s) => {
      ids[b * S + s] = BigInt(id), mask[b * S + s] = 1n, types[b * S + s] = BigInt(r.token_type_ids?.[s] ?? 0);
    }));
    const feeds = {
      input_ids: new ort.Tensor("int64", ids, [B, S]), attention_mask: new ort.Tensor("int64", mask, [B, S]),
      token_type_ids: new ort.Tensor("int64", types, [B, S]),
    };
    const t0 = performance.now();
    const res = (await session.run(feeds))[out];
    ms += performance.now() - t0;
    const y = res.data, dims = res.dims;
    batch.forEach((r, b) => {
      if (r.masks) {
        const V = dims[dims.length - 1];
        r.masks.forEach((m) => {
          const o = y.subarray((b * S + m.position) * V, (b * S + m.position + 1) * V);
          m.top.forEach((t) => { maxDiff = Math.max(maxDiff, Math.abs(t.logit - o[t.token_id])); });
          agree += argmax(Array.from(o)) === m.top[0].token_id, compared++;
        });
        return;
      }
      const want = r.logits ?? r.token_logits ?? r.embedding;
      const token = Array.isArray(want[0]);
      const perRow = dims[dims.length - 1];
      const rowsOf = token ? want : [want];
      rowsOf.forEach((q, s) => {
        const base = token ? (b * S + s) * perRow : b * perRow;
        const o = Array.from(y.subarray(base, base + perRow));
        q.forEach((v, i) => { maxDiff = Math.max(maxDiff, Math.abs(v - o[i])); });
        agree += argmax(o) === argmax(q), compared++;
        if (!token) ortPred.push([argmax(o), argmax(q)]);
      });
    });
  }
  const result = { examples: rows.length, max_abs_diff: maxDiff, agreement: agree / compared, compared, ort_ms: ms };
  if (a.labels) {
    const gold = fs.readFileSync(a.labels, "utf8").split("\n").slice(1).filter(Boolean).map((l) => Number(l.split("\t").at(-1)));
    const n = Math.min(gold.length, ortPred.length);
    let ok = 0, okq = 0;
    for (let i = 0; i < n; i++) ok += ortPred[i][0] === gold[i], okq += ortPred[i][1] === gold[i];
    result.ort_accuracy = ok / n, result.qbert_accuracy = okq / n;
  }
  console.log(JSON.stringify(result));
}

main().catch((e) => { console.error(`ort_check: ${e.message}`); process.exit(1); });
