#!/usr/bin/env node
// Sentence embeddings through onnxruntime-node, timed: the ids `qbert embed`
// made (its JSON lines), in input order, padded batches.
//
//   node ort_embed.mjs --model M.onnx --ids EMBED.jsonl [--batch 32] [--threads 2] [--spin 0|1]
//
// Prints {"sentences", "seconds", "per_s"}: session.run over every batch
// after one untimed warm-up batch (building the int64 feeds included).
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const ort = require(path.join(path.dirname(fileURLToPath(import.meta.url)), "node_modules", "onnxruntime-node"));

const a = { batch: 32, threads: 2 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) a[argv[i].replace(/^--/, "")] = argv[i + 1];
const ids = fs.readFileSync(a.ids, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l).input_ids);
const B = Number(a.batch);

function feeds(rows) {
  const S = Math.max(...rows.map((r) => r.length)), n = rows.length * S;
  const x = new BigInt64Array(n), m = new BigInt64Array(n), t = new BigInt64Array(n);
  rows.forEach((r, b) => r.forEach((id, s) => { x[b * S + s] = BigInt(id); m[b * S + s] = 1n; }));
  const dims = [rows.length, S];
  return { input_ids: new ort.Tensor("int64", x, dims), attention_mask: new ort.Tensor("int64", m, dims),
    token_type_ids: new ort.Tensor("int64", t, dims) };
}

// No spinning between ops by default, as qbert's pool sleeps after a short
// spin: on a shared machine a spinning pool takes the cores other work needs.
const session = await ort.InferenceSession.create(a.model, {
  intraOpNumThreads: Number(a.threads), interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all",
  extra: { session: { intra_op: { allow_spinning: a.spin ?? "0" } } },
});
await session.run(feeds(ids.slice(0, B)));
const t0 = performance.now();
for (let at = 0; at < ids.length; at += B) await session.run(feeds(ids.slice(at, at + B)));
const seconds = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ sentences: ids.length, seconds, per_s: ids.length / seconds }));
