// npm run bench -- gateway [--tokens 20] [--runs 3] [--clients 8] [--only gpt2|llama80] [--wire-only | --throughput-only]
//
// Through a live gateway (HTTP, graphql-ws), for a GPT-2-small-shaped model and an 80-layer,
// V=128256, tiny-width Llama (the 70B's bandwidth shape): bytes on the wire for mode 1 (top-k),
// mode 2 (+ trajectories), the widget JSON and naive full logits, gzip off and on; the JSON, JSON
// with `precision:` and PACKED encodings of mode 2 with encode/decode time and error (bench/wire.ts);
// streamed events with and without compression; time to the first LayerResult vs the whole stream;
// throughput of 1 client vs N concurrent clients, for the default batching and for the pre-tuning
// one (one padded pass, 128 MB head calls), interleaved in one run. --wire-only skips latency and
// throughput; --throughput-only runs just the throughput rounds.

import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { openModel, type LensModel } from '../src/lens/index.js';
import { buildApp } from '../src/server/app.js';
import { ModelRegistry } from '../src/server/models.js';
import { MemoryResultStore } from '../src/server/result-store.js';
import { gatewayApi } from '../resolvers/index.js';
import { makeCheckpoint, RECIPES, type FixtureRecipe } from '../test/helpers/fixtures.js';
import { GPT2_SMALL, gpt2Checkpoint, promptOfTokens } from './checkpoints.js';
import { measureCancel, measureEncodings, measureStreams, wireBytes, type CancelRow, type EncodingRow, type StreamRow } from './wire.js';

const { values } = parseArgs({
  options: {
    tokens: { type: 'string', default: '20' },
    runs: { type: 'string', default: '3' },
    clients: { type: 'string', default: '8' },
    only: { type: 'string' },
    'throughput-only': { type: 'boolean', default: false },
    'wire-only': { type: 'boolean', default: false },
  },
});
const T = Number(values.tokens);
const RUNS = Number(values.runs);
const CLIENTS = Number(values.clients);

const LEGACY = '-legacy-batching';

const LLAMA80: FixtureRecipe = { ...RECIPES['llama-gqa-tied'], name: 'bench-llama-80L-v128k', layers: 80 };

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const kb = (b: number) => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(1)} GiB` : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
const ms = (x: number) => `${x.toFixed(0)} ms`;

async function post(url: string, query: string, variables: unknown): Promise<{ data?: any; errors?: unknown }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  const body = (await res.json()) as { data?: any; errors?: unknown };
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body;
}

const MODE1 = 'query($input: LensInput!) { lens(input: $input) { tokens { id text } layers topIndices topProbs } }';
const MODE2 = 'query($input: LensInput!) { lens(input: $input) { tokens { id text } layers topIndices topProbs tracked { tokenIds probs } } }';
const WIDGET = 'query($input: LensInput!) { lens(input: $input) { widget(format: V2) } }';
const TIMED = 'query($input: LensInput!) { lens(input: $input) { timings { totalMs batchSize } } }';
const STREAM = `subscription($input: LensInput!) { lensLayers(input: $input) { __typename ... on LayerResult { layer topIndices topProbs } ... on LensCompleted { result { id } } } }`;

/** JSON and gzip size per probability of a full distribution, from one synthetic softmax row. */
function naivePerNumber(V: number): { json: number; gzipJson: number; gzipF32: number } {
  let s = 0x9e3779b9;
  const rand = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  const logits = Array.from({ length: V }, () => {
    const u = Math.max(rand(), 1e-12);
    return 3 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  });
  const m = logits.reduce((a, b) => (b > a ? b : a), -Infinity);
  const e = logits.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  const p = e.map((x) => x / z);
  const json = Buffer.from(JSON.stringify(p));
  const f32 = Buffer.from(new Float32Array(p).buffer);
  return { json: json.length / V, gzipJson: gzipSync(json).length / V, gzipF32: gzipSync(f32).length / V };
}

interface Phase {
  ms: number;
  cpuMs: number;
  requests: number;
  batches: number[];
}

/** CLIENTS × 2 requests, from one client in sequence or from CLIENTS clients at once; wall and process CPU time. */
async function phase(url: string, modelId: string, prompt: string, concurrent: boolean, tag: string): Promise<Phase> {
  const requests = CLIENTS * 2;
  const batches: number[] = [];
  const one = async (i: string) => {
    const r = await post(url, TIMED, { input: { model: modelId, prompt: `${prompt} ${tag}${i}`, topK: 5 } });
    batches.push(r.data.lens.timings.batchSize);
  };
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  if (concurrent) {
    await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
      for (let i = 0; i < requests / CLIENTS; i++) await one(`${c}-${i}`);
    }));
  } else {
    for (let i = 0; i < requests; i++) await one(String(i));
  }
  const cpu = process.cpuUsage(c0);
  return { ms: performance.now() - t0, cpuMs: (cpu.user + cpu.system) / 1000, requests, batches };
}

/**
 * 1 client vs CLIENTS concurrent clients for each batching configuration, interleaved round by round
 * (order alternating) so background load on the machine hits every configuration alike.
 */
async function throughput(url: string, configs: Array<{ name: string; id: string }>, prompt: string) {
  const acc = new Map(configs.map((c) => [c.name, { seq: [] as Phase[], conc: [] as Phase[] }]));
  for (const c of configs) await post(url, TIMED, { input: { model: c.id, prompt, topK: 5 } }); // warm-up
  for (let r = 0; r < RUNS; r++) {
    const order = r % 2 ? [...configs].reverse() : configs;
    for (const concurrent of [false, true]) {
      for (const c of order) acc.get(c.name)![concurrent ? 'conc' : 'seq'].push(await phase(url, c.id, prompt, concurrent, `r${r}-`));
    }
  }
  const sum = (ps: Phase[]) => ps.reduce((a, p) => ({ ms: a.ms + p.ms, cpuMs: a.cpuMs + p.cpuMs, requests: a.requests + p.requests }), { ms: 0, cpuMs: 0, requests: 0 });
  return configs.map((c) => {
    const { seq, conc } = acc.get(c.name)!;
    const s = sum(seq);
    const k = sum(conc);
    const batches = conc.flatMap((p) => p.batches);
    return {
      name: c.name,
      seqRps: s.requests / (s.ms / 1000),
      concRps: k.requests / (k.ms / 1000),
      seqCpu: s.cpuMs / s.requests,
      concCpu: k.cpuMs / k.requests,
      meanBatch: batches.reduce((a, b) => a + b, 0) / batches.length,
      /** N clients / 1 client, per round (same request count, so the ratio of times). */
      perRound: seq.map((p, i) => p.ms / conc[i].ms),
    };
  });
}

async function benchModel(label: string, model: LensModel, url: string, prompt: string) {
  const info = model.info;
  const input = { model: info.id, prompt, topK: 5 };
  const inputTracked = { ...input, trackAcrossLayers: true };
  const tokens = model.tokenize(prompt).length;
  const L = info.numLayers;
  const V = info.vocabSize;
  const wireOnly = values['wire-only'];
  if (!wireOnly) await post(url, MODE1, { input }); // warm-up

  const bytes = wireOnly ? { mode1: [NaN, NaN], mode2: [NaN, NaN], widget: [NaN, NaN] } : {
    mode1: [await wireBytes(url, { query: MODE1, variables: { input } }, false), await wireBytes(url, { query: MODE1, variables: { input } }, true)],
    mode2: [await wireBytes(url, { query: MODE2, variables: { input: inputTracked } }, false), await wireBytes(url, { query: MODE2, variables: { input: inputTracked } }, true)],
    widget: [await wireBytes(url, { query: WIDGET, variables: { input: inputTracked } }, false), await wireBytes(url, { query: WIDGET, variables: { input: inputTracked } }, true)],
  };
  const per = naivePerNumber(V);
  const n = L * tokens * V;
  // Encoding naive float32 is copying L × T × V floats into the response: timed for one layer's
  // [T, V] slab and multiplied by L (the whole 783 MB would not fit next to the other processes).
  const slab = new Float32Array(tokens * V).map((_, i) => (i % 997) / 1e6);
  const copyMs = (() => {
    const t = performance.now();
    for (let r = 0; r < 3; r++) Buffer.from(slab.buffer).copy(Buffer.allocUnsafe(slab.byteLength));
    return (performance.now() - t) / 3;
  })();
  const naive = { f32: n * 4, gzipF32: n * per.gzipF32, json: n * per.json, gzipJson: n * per.gzipJson, encodeMs: copyMs * L };

  // Encodings of one mode 2 result, and streams with and without compression.
  const { rows: encodings, result: direct } = await measureEncodings(url, inputTracked, RUNS);
  const tracked = direct.tracked!.reduce((a, t) => a + t.tokenIds.length, 0);
  const streams = await measureStreams(url, inputTracked, RUNS);
  const cancel = await measureCancel(url, inputTracked, RUNS);
  const wire = { tracked, encodings, streams, cancel };
  if (wireOnly) return { label, info, tokens, bytes, naive, wire, first: NaN, total: NaN, query: NaN };

  // Streaming latency over graphql-ws.
  const ws = createClient({ url: url.replace(/^http/, 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  const first: number[] = [];
  const total: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    let f = 0;
    for await (const ev of ws.iterate<any>({ query: STREAM, variables: { input } })) {
      if (!f && ev.data?.lensLayers.__typename === 'LayerResult') f = performance.now() - t0;
    }
    first.push(f);
    total.push(performance.now() - t0);
  }
  await ws.dispose();
  const queryTimes: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    await post(url, MODE1, { input });
    queryTimes.push(performance.now() - t0);
  }

  return { label, info, tokens, bytes, naive, wire, first: median(first), total: median(total), query: median(queryTimes) };
}

function printPayloads(r: Awaited<ReturnType<typeof benchModel>>): void {
  console.log('| payload | identity | gzip |');
  console.log('|---|---:|---:|');
  if (!values['wire-only']) {
    console.log(`| mode 1: top-5 ids + probs per (layer, position) | ${kb(r.bytes.mode1[0])} | ${kb(r.bytes.mode1[1])} |`);
    console.log(`| mode 2: + trajectories of every top-5 token | ${kb(r.bytes.mode2[0])} | ${kb(r.bytes.mode2[1])} |`);
    console.log(`| widget JSON V2 (mode 2) | ${kb(r.bytes.widget[0])} | ${kb(r.bytes.widget[1])} |`);
  }
  console.log(`| naive full distributions, float32 binary | ${kb(r.naive.f32)} | ≈ ${kb(r.naive.gzipF32)} |`);
  console.log(`| naive full distributions, JSON numbers (estimated) | ≈ ${kb(r.naive.json)} | ≈ ${kb(r.naive.gzipJson)} |`);
  console.log('');
  printWire(r.wire, r.naive, r.info.numLayers);
  if (values['wire-only']) return;
  console.log('| latency | time |');
  console.log('|---|---:|');
  console.log(`| graphql-ws: first LayerResult | ${ms(r.first)} |`);
  console.log(`| graphql-ws: LensCompleted (all ${r.info.numLayers} layers) | ${ms(r.total)} |`);
  console.log(`| HTTP Query.lens, mode 1 | ${ms(r.query)} |`);
  console.log('');
}

async function main() {
  const specs: Array<{ key: string; label: string; dir: () => string; id: string }> = [
    { key: 'gpt2', label: 'GPT-2-small shape (12 L, d 768, V 50257)', dir: () => gpt2Checkpoint(GPT2_SMALL), id: 'gpt2-small' },
    { key: 'llama80', label: '80 L, d 64, V 128256 (Llama-3 70B bandwidth shape)', dir: () => makeCheckpoint(LLAMA80), id: 'llama-80l' },
  ].filter((s) => !values.only || s.key === values.only);

  const registry = new ModelRegistry({ maxQueue: 256, batchWindowMs: 2, maxBatchSize: CLIENTS });
  const models: LensModel[] = [];
  for (const s of specs) {
    const t = performance.now();
    const m = await openModel(s.dir(), { id: s.id, device: 'auto' });
    console.error(`opened ${s.id} on ${m.info.device} in ${ms(performance.now() - t)}`);
    registry.add(m);
    models.push(m);
    // The same checkpoint batched the way lensgate did before its batching was tuned, for a side-by-side row.
    registry.add(await openModel(s.dir(), { id: `${s.id}${LEGACY}`, device: 'auto', batching: { headRows: Number.MAX_SAFE_INTEGER, maxPaddingShare: 1 } }));
  }
  registry.markReady();
  const app = buildApp({ registry, api: gatewayApi({ registry, store: new MemoryResultStore() }), port: 0, host: '127.0.0.1', logging: false, graphiql: false, streamCompression: true });
  const { url } = await app.start();

  const rows = [];
  for (const [i, s] of specs.entries()) {
    const prompt = promptOfTokens(T);
    const row = values['throughput-only'] ? { label: s.label, info: models[i].info, tokens: models[i].tokenize(prompt).length } : await benchModel(s.label, models[i], url, prompt);
    const tp = values['wire-only'] ? [] : await throughput(url, [{ name: 'tuned (default)', id: s.id }, { name: 'legacy: one padded pass, 128 MB head calls', id: `${s.id}${LEGACY}` }], prompt);
    rows.push({ ...row, tp });
  }
  await app.stop();
  await registry.close();

  console.log(`\n## Gateway benchmark (${cpus().length} × ${cpus()[0]?.model.trim()}, device ${models.map((m) => `${m.info.id}: ${m.info.device}`).join(', ')}; top-5; median of ${RUNS})\n`);
  for (const r of rows) {
    console.log(`### ${r.label} — ${r.tokens} tokens\n`);
    if ('bytes' in r) printPayloads(r);
    if (values['wire-only']) continue;
    console.log(`Throughput, mode 1: ${RUNS} interleaved rounds of ${CLIENTS * 2} requests per cell; CPU = process CPU time per request.\n`);
    console.log(`| batching | 1 client req/s | ${CLIENTS} clients req/s | ${CLIENTS} clients / 1 client | per round | mean batch | CPU ms/req 1 client | CPU ms/req ${CLIENTS} clients |`);
    console.log('|---|---:|---:|---:|---|---:|---:|---:|');
    for (const t of r.tp) {
      console.log(
        `| ${t.name} | ${t.seqRps.toFixed(2)} | ${t.concRps.toFixed(2)} | **${(t.concRps / t.seqRps).toFixed(2)}x** | ${t.perRound.map((x) => x.toFixed(2)).join(', ')} | ${t.meanBatch.toFixed(1)} | ${t.seqCpu.toFixed(0)} | ${t.concCpu.toFixed(0)} |`,
      );
    }
    console.log('');
  }
  console.log('Naive rows: L × T × V probabilities; float32 size is exact, JSON/gzip sizes extrapolate one synthetic softmax row (logit std 3).');
}

function printWire(
  wire: { tracked: number; encodings: EncodingRow[]; streams: StreamRow[]; cancel: CancelRow[] },
  naive: { f32: number; gzipF32: number; encodeMs: number },
  L: number,
): void {
  console.log(`Whole mode 2 response (top-5 + trajectories of ${wire.tracked} tracked ids over ${L} layers, with the tokens) by encoding, bytes as received over HTTP (Query.lensResult of one stored result); encode = the arrays serialized in-process, decode = JSON.parse (+ unpackLens for PACKED) to arrays; error = worst |p′ − p| / max(p, floor) over every probability:\n`);
  console.log('| encoding | identity | gzip | naive float32 ÷ gzip | encode | decode | error |');
  console.log('|---|---:|---:|---:|---:|---:|---|');
  const t = (x: number) => (Number.isNaN(x) ? '–' : `${x.toFixed(1)} ms`);
  console.log(`| naive: full distributions, float32 binary | ${kb(naive.f32)} | ≈ ${kb(naive.gzipF32)} | 1× | ${t(naive.encodeMs)} (copy, from one layer × L) | 0 (a view) | ≤ 6e-8 relative |`);
  for (const e of wire.encodings) {
    console.log(`| ${e.label} | ${kb(e.identity)} | ${kb(e.gzip)} | ${Math.round(naive.f32 / e.gzip).toLocaleString('en-US')}× | ${t(e.encodeMs)} | ${t(e.decodeMs)} | ${e.error} |`);
  }
  const goal = wire.encodings.find((e) => e.label.includes('default; top-k via topLocal'));
  if (goal) {
    const ok = goal.gzip <= 150_000 && naive.f32 / goal.gzip >= 5000;
    console.log(`\nGoal (issue 13): ≤ 150 KB (150,000 bytes) with gzip and ≥ 5000× smaller than naive, at the default bound: ${goal.gzip.toLocaleString('en-US')} bytes, ${Math.round(naive.f32 / goal.gzip).toLocaleString('en-US')}× — ${ok ? 'met' : 'NOT met'}.`);
  }
  console.log('');
  console.log('Streamed mode 2 (every LayerResult, then LensCompleted with the trajectories), bytes received by the client:\n');
  console.log('| transport, events, compression | bytes | first LayerResult | LensCompleted | mean gap between LayerResults |');
  console.log('|---|---:|---:|---:|---:|');
  for (const s of wire.streams) {
    console.log(`| ${s.label} | ${kb(s.bytes)} | ${ms(s.firstMs)} | ${ms(s.totalMs)} | ${s.gapMs.toFixed(1)} ms |`);
  }
  console.log('');
  console.log('Cancellation (PACKED stream cancelled at its first LayerResult, then the same stream again; the model runs one job at a time, so the second waits until the server has stopped the first):\n');
  console.log('| transport, compression | first LayerResult, idle model | first LayerResult right after a cancel |');
  console.log('|---|---:|---:|');
  for (const c of wire.cancel) console.log(`| ${c.label} | ${ms(c.idleFirstMs)} | ${ms(c.afterCancelFirstMs)} |`);
  console.log('');
}

await main();
