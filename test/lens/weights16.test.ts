// 16-bit checkpoints on CPU: weights stay 16-bit in the graphs and are widened per call in row chunks
// (never folded into a float32 copy). Tiny chunks here force many chunks per weight, so the
// Concat (torch Linear) and Sum (GPT-2 Conv1D) paths and the chunked unembedding all run, and the
// lens must still match the float64 reference like the float32 checkpoints do.
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectArchitecture } from '../../src/architectures/registry.js';
import { openCheckpoint } from '../../src/checkpoint/hf-dir.js';
import { buildBlockGraph } from '../../src/graph/block.js';
import { buildUnembedGraph } from '../../src/graph/head.js';
import { WeightBinder } from '../../src/graph/weights.js';
import { type LensModel, openModel } from '../../src/lens/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { referenceLens } from '../helpers/reference.js';
import { expectMatchesReference, idsOf } from './helpers.js';

const PROMPT = 'The capital of France is Paris. The capital of Germany is';
const TINY_CHUNKS = 4096; // float32 bytes: 16 rows of a 64-wide weight

const models: Record<string, LensModel> = {};
const m0 = () => models['gpt2-f16'];
beforeAll(async () => {
  for (const name of ['llama-gqa-tied-bf16', 'gpt2-f16'] as const) {
    // No memory budget: the unembedding is widened per call too (the default budget keeps it float32).
    models[name] = await openModel(makeCheckpoint(RECIPES[name]), { device: 'cpu', weightChunkBytes: TINY_CHUNKS, memoryBudget: 0 });
  }
});
afterAll(async () => {
  for (const m of Object.values(models)) await m.close();
});

describe('16-bit weights widened per call', () => {
  it('bind each 16-bit weight as several 16-bit external chunks, each widened by its own Cast', () => {
    const ckpt = openCheckpoint(makeCheckpoint(RECIPES['llama-gqa-tied-bf16']));
    const spec = detectArchitecture(ckpt.config);
    const plan = spec.plan(ckpt.config);
    const w = new WeightBinder(ckpt, spec.optionalPrefixes, 'float', true, TINY_CHUNKS);
    const graph = onnxProto.onnx.ModelProto.decode(buildBlockGraph(plan.blocks[0], 0, plan.hiddenSize, w)).graph!;
    const BF16 = onnxProto.onnx.TensorProto.DataType.BFLOAT16;
    const gate = graph.initializer!.filter((t) => t.name!.startsWith('w:model.layers.0.mlp.gate_proj.weight:'));
    expect(gate.length).toBeGreaterThan(1);
    expect(gate.every((t) => t.dataType === BF16 && t.dataLocation === onnxProto.onnx.TensorProto.DataLocation.EXTERNAL)).toBe(true);
    const rows = gate.reduce((a, t) => a + Number(t.dims![0]), 0);
    expect(rows).toBe(plan.blocks[0].mlp.kind === 'gated' ? plan.blocks[0].mlp.size : -1);
    expect(graph.node!.filter((n) => n.opType === 'Cast' && n.input![0].startsWith('w:model.layers.0.mlp.gate_proj.weight:'))).toHaveLength(gate.length);
    // No float32 initializer of any weight's size: nothing for ORT to hold widened.
    expect(graph.initializer!.filter((t) => t.dataType === onnxProto.onnx.TensorProto.DataType.FLOAT && Number(t.dims?.[0] ?? 0) > 64)).toEqual([]);
    const head = onnxProto.onnx.ModelProto.decode(buildUnembedGraph(plan, w)).graph!;
    expect(head.initializer!.filter((t) => t.name!.startsWith('w:model.embed_tokens.weight:')).length).toBeGreaterThan(1);
  });

  it.each(['llama-gqa-tied-bf16', 'gpt2-f16'] as const)('%s: the lens matches the float64 reference within 1e-5 (both read points, trajectories)', async (name) => {
    const m = models[name];
    const r = await m.lens(PROMPT, { topK: 5, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
    const ref = referenceLens(makeCheckpoint(RECIPES[name]), idsOf(r));
    expectMatchesReference(r, ref, m.info.numLayers, 1e-5);
  });

  it('the vocabulary-chunked head merges top-k and log-sum-exp across chunks: a top 40 still matches the reference', async () => {
    const m = models['llama-gqa-tied-bf16'];
    // 64 chunks of 2004 rows (V 128256): a row's top 40 come from many chunks, so every merge step decides some of them.
    const r = await m.lens(PROMPT, { topK: 40, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
    expectMatchesReference(r, referenceLens(makeCheckpoint(RECIPES['llama-gqa-tied-bf16']), idsOf(r)), m.info.numLayers, 1e-5);
  });

  it('with the memory budget for it, the unembedding is one float32 copy (prepacked); the lens still matches the reference', async () => {
    const { planPrepacking } = await import('../../src/lens/prepack.js');
    const base = { mode: 'auto' as const, castPerCall: true, provider: 'cpu' as const, headFloat32Bytes: 2e9, blocksFloat32Bytes: 28e9, weightBytes: 16e9 };
    // 8B shape: a 2 GB float32 head fits 15% of 16 GB of files; blocks are never packed when widened per call.
    expect(planPrepacking(base)).toEqual({ head: true, blocks: false, headFloat32: 1 });
    expect(planPrepacking({ ...base, budget: 1e9 })).toEqual({ head: true, blocks: false, headFloat32: 0.5 });
    expect(planPrepacking({ ...base, budget: 0 })).toEqual({ head: false, blocks: false, headFloat32: 0 });
    // 1B shape, tied: a 1.05 GB float32 head is 42% of 2.47 GB of files, past the default 15%: 35% of its rows.
    const share = planPrepacking({ ...base, headFloat32Bytes: 1.05e9, blocksFloat32Bytes: 3.9e9, weightBytes: 2.47e9 }).headFloat32;
    expect(share).toBeCloseTo((0.15 * 2.47) / 1.05, 6);
    expect(planPrepacking({ ...base, mode: 'none' })).toEqual({ head: false, blocks: false, headFloat32: 1 });
    const dir = makeCheckpoint(RECIPES['llama-gqa-tied-bf16']);
    const m = await openModel(dir, { device: 'cpu', weightChunkBytes: TINY_CHUNKS, memoryBudget: 2 ** 30 });
    try {
      const r = await m.lens(PROMPT, { topK: 5, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
      expectMatchesReference(r, referenceLens(dir, idsOf(r)), m.info.numLayers, 1e-5);
      expect(r.topIndices).toEqual((await models['llama-gqa-tied-bf16'].lens(PROMPT, { topK: 5 })).topIndices);
    } finally {
      await m.close();
    }
  });

  it('an unembedding part float32 (folded), part widened per call: the split is where the budget puts it and the lens matches the reference', async () => {
    const dir = makeCheckpoint(RECIPES['llama-gqa-tied-bf16']);
    const ckpt = openCheckpoint(dir);
    const spec = detectArchitecture(ckpt.config);
    const plan = spec.plan(ckpt.config);
    const V = plan.vocabSize;
    const split = 50_001; // not a multiple of any chunk size
    const w = new WeightBinder(ckpt, spec.optionalPrefixes, 'float', true, TINY_CHUNKS);
    const graph = onnxProto.onnx.ModelProto.decode(buildUnembedGraph(plan, w, [], { float32Rows: split })).graph!;
    const chunks = graph.initializer!.filter((t) => t.name!.startsWith('w:model.embed_tokens.weight:'));
    const inputs = new Set(graph.input!.map((i) => i.name));
    const start = (t: (typeof chunks)[number]) => Number(t.name!.split(':').pop());
    // The float32 rows are plain initializers (ORT folds their Casts); the rest are also graph inputs (never folded).
    expect(chunks.filter((t) => start(t) < split).every((t) => !inputs.has(t.name!))).toBe(true);
    expect(chunks.filter((t) => start(t) >= split).every((t) => inputs.has(t.name!))).toBe(true);
    expect(chunks.filter((t) => start(t) < split).reduce((a, t) => a + Number(t.dims![0]), 0)).toBe(split);
    expect(chunks.reduce((a, t) => a + Number(t.dims![0]), 0)).toBe(V);

    // Half of the float32 head's bytes: the first V/2 rows float32, the rest widened per call.
    const m = await openModel(dir, { device: 'cpu', weightChunkBytes: TINY_CHUNKS, memoryBudget: (V * plan.hiddenSize * 4) / 2 });
    try {
      const r = await m.lens(PROMPT, { topK: 40, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
      expectMatchesReference(r, referenceLens(dir, idsOf(r)), m.info.numLayers, 1e-5);
      // Both parts decide some of the top 40 (an id offset in either part fails the comparison above).
      const ids = r.topIndices.flat(2);
      expect(ids.some((id) => id < V / 2)).toBe(true);
      expect(ids.some((id) => id >= V / 2)).toBe(true);
      const widened = models['llama-gqa-tied-bf16'];
      expect(r.topIndices).toEqual((await widened.lens(PROMPT, { topK: 40, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] })).topIndices);
      // Stats and naive rows read all V columns across the split too.
      const [withStats, expected] = [await m.lens(PROMPT, { topK: 3, stats: true }), await widened.lens(PROMPT, { topK: 3, stats: true })];
      withStats.stats!.entropy.flat().forEach((h, i) => expect(h).toBeCloseTo(expected.stats!.entropy.flat()[i], 6));
      withStats.stats!.klToFinal.flat().forEach((h, i) => expect(h).toBeCloseTo(expected.stats!.klToFinal.flat()[i], 6));
      expect(withStats.stats!.finalTop1Rank).toEqual(expected.stats!.finalTop1Rank);
      const naive = await m.lensNaive(PROMPT, { topK: 3 });
      expect(naive.topIndices).toEqual(expected.topIndices);
    } finally {
      await m.close();
    }
  });

  it('gpt2-f16: a float16 unembedding half float32, half widened per call also matches the reference (level-all ORT killed the process)', async () => {
    const dir = makeCheckpoint(RECIPES['gpt2-f16']);
    const m = await openModel(dir, { device: 'cpu', weightChunkBytes: TINY_CHUNKS, memoryBudget: (m0().info.vocabSize * m0().info.hiddenSize * 4) / 2 });
    try {
      const r = await m.lens(PROMPT, { topK: 10, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
      expectMatchesReference(r, referenceLens(dir, idsOf(r)), m.info.numLayers, 1e-5);
    } finally {
      await m.close();
    }
  });

  it('stats and the naive baseline from the shared unembedding session agree with the lens head', async () => {
    const m = models['llama-gqa-tied-bf16'];
    const r = await m.lens(PROMPT, { topK: 3, stats: true });
    const naive = await m.lensNaive(PROMPT, { topK: 3 });
    expect(naive.topIndices).toEqual(r.topIndices);
    naive.topProbs.flat(2).forEach((p, i) => expect(p).toBeCloseTo(r.topProbs.flat(2)[i], 6));
    const L = m.info.numLayers;
    // The last layer's distribution is the final one: KL 0, its own top-1 ranks first.
    expect(r.stats!.klToFinal[L - 1].every((x) => Math.abs(x) < 1e-9)).toBe(true);
    expect(r.stats!.finalTop1Rank[L - 1].every((x) => x === 0)).toBe(true);
    r.stats!.entropy.flat().forEach((h) => expect(h).toBeGreaterThan(0));
  });
});
