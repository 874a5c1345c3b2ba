// npm run bench -- lens [--runs 10] [--tokens 20] [--dtype F32|F16|BF16]
// GPT-2-small-shaped random checkpoint: load time, RSS, per-request time, per-layer time, head vs blocks,
// FLOPs and the floor at this machine's measured ORT MatMul rate, mode 2 vs mode 1 vs naive.
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { GraphBuilder } from '../src/graph/onnx-builder.js';
import { openModel, type LensOptions, type LensResult } from '../src/lens/index.js';
import { ort } from '../src/runtime/sessions.js';
import { type BenchDtype, GPT2_SMALL, gpt2Checkpoint, promptOfTokens } from './checkpoints.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '10' }, tokens: { type: 'string', default: '20' }, dtype: { type: 'string', default: 'F32' } },
});
const DTYPE = values.dtype as BenchDtype;
const RUNS = Number(values.runs);
const T = Number(values.tokens);
const shape = GPT2_SMALL;
const { layers: L, hidden: D, vocab: V } = shape;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (b: number) => (b / 2 ** 20).toFixed(0);

async function matmulRate(rows: number): Promise<number> {
  const g = new GraphBuilder('matmul');
  const a = g.input('a', 'float', [rows, D]);
  const b = g.input('b', 'float', [D, V]);
  g.output(g.op('MatMul', [a, b]), 'c', 'float', [rows, V]);
  const s = await ort.InferenceSession.create(g.toBytes());
  const feeds = {
    a: new ort.Tensor('float32', new Float32Array(rows * D).fill(0.01), [rows, D]),
    b: new ort.Tensor('float32', new Float32Array(D * V).fill(0.01), [D, V]),
  };
  await s.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await s.run(feeds);
    times.push(performance.now() - t);
  }
  await s.release();
  return (2 * rows * D * V) / (median(times) / 1000) / 1e9;
}

async function main() {
  const t0 = performance.now();
  const dir = gpt2Checkpoint(shape, DTYPE);
  const writeMs = performance.now() - t0;
  const rss0 = process.memoryUsage().rss;
  const t1 = performance.now();
  const model = await openModel(dir, { device: 'cpu' });
  const loadMs = performance.now() - t1;
  const rss1 = process.memoryUsage().rss;
  const prompt = promptOfTokens(T);
  const nTok = model.tokenize(prompt).length;

  async function measure(label: string, run: () => Promise<LensResult>) {
    await run();
    const totals: number[] = [];
    const blocks: number[] = [];
    const heads: number[] = [];
    const extra: number[] = [];
    let last!: LensResult;
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      last = await run();
      totals.push(performance.now() - t);
      blocks.push(last.timings.blocksMs);
      heads.push(last.timings.headMs);
      extra.push(last.timings.trackMs + last.timings.statsMs);
    }
    const bytes = JSON.stringify({ topIndices: last.topIndices, topProbs: last.topProbs, tracked: last.tracked }).length;
    return { label, total: median(totals), blocks: median(blocks), head: median(heads), extra: median(extra), bytes };
  }

  const opts = (o: LensOptions) => ({ topK: 5, ...o });
  const rows = [
    await measure('mode 1 (top-5, one head call for all layers)', () => model.lens(prompt, opts({}))),
    await measure('mode 1 streaming (head per layer, onLayer)', () => model.lens(prompt, opts({ onLayer: () => {} }))),
    await measure('mode 2 (top-5 + trajectories)', () => model.lens(prompt, opts({ trackAcrossLayers: true }))),
    await measure('mode 1 + stats (entropy, KL, rank)', () => model.lens(prompt, opts({ stats: true }))),
    await measure('naive (full logits to JS)', () => model.lensNaive(prompt, opts({ trackAcrossLayers: true }))),
  ];
  const rss2 = process.memoryUsage().rss;

  const blockFlops = L * nTok * (24 * D * D + 4 * nTok * D);
  const headFlops = L * nTok * 2 * D * V;
  const rate = await matmulRate(L * nTok);
  await model.close();

  const out: string[] = [];
  out.push(`### npm run bench -- lens — GPT-2-small shape (${L} layers, d=${D}, V=${V}, random ${DTYPE}), ${nTok}-token prompt, median of ${RUNS}`);
  out.push(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, onnxruntime-node CPU EP`);
  out.push('');
  out.push(`| load (open + ${L + 1} sessions) | RSS before | RSS after load | RSS after runs | checkpoint write |`);
  out.push('|---|---|---|---|---|');
  out.push(`| ${loadMs.toFixed(0)} ms | ${mb(rss0)} MB | ${mb(rss1)} MB | ${mb(rss2)} MB | ${writeMs.toFixed(0)} ms (cached after first run) |`);
  out.push('');
  out.push('| mode | per request | blocks | per layer (block) | lens head | trajectories/stats | result JSON |');
  out.push('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    out.push(`| ${r.label} | ${r.total.toFixed(1)} ms | ${r.blocks.toFixed(1)} ms | ${(r.blocks / L).toFixed(2)} ms | ${r.head.toFixed(1)} ms (${((100 * r.head) / r.total).toFixed(0)}%) | ${r.extra.toFixed(1)} ms | ${(r.bytes / 1024).toFixed(1)} KB |`);
  }
  out.push('');
  out.push(`FLOPs: blocks ${(blockFlops / 1e9).toFixed(2)} GFLOP, lens head ${(headFlops / 1e9).toFixed(2)} GFLOP. ` +
    `ORT MatMul [${L * nTok}×${D}]·[${D}×${V}] on this machine: ${rate.toFixed(1)} GFLOP/s → floor ${(((blockFlops + headFlops) / 1e9 / rate) * 1000).toFixed(1)} ms per request.`);
  process.stdout.write(`${out.join('\n')}\n`);
}

await main();
