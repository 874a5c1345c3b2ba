// float16 compute on CPU against float32 and the float64 reference, on the tiny fixtures.
// ORT's CPU EP runs most float16 nodes through inserted float32 casts, so this measures the
// float16 storage of weights and intermediates (what dominates on a GPU too, where cuBLAS
// accumulates float16 GEMMs in float32), not CUDA's kernels: scripts/gpu checks those.
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../src/graph/onnx-builder.js';
import { type LensModel, type LensResult, openModel } from '../../src/lens/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { referenceLens } from '../helpers/reference.js';
import { deviation, idsOf } from '../lens/helpers.js';

const CASES = [
  'gpt2-tiny',
  'gpt2-bf16-sharded',
  'llama-gqa-tied-bf16',
  'llama-f16-sharded',
  'mistral-window4',
  'qwen2-untied-bf16',
] as const;
const PROMPT = 'The capital of France is Paris, and the capital of Italy is';
const TOL = 2e-3;

const measured: string[] = [];
afterAll(() => console.log(`float16 vs float64 reference, max |Δp| over top-5 cells and trajectories:\n${measured.join('\n')}`));

/** Top-1 disagreements with float32 that are not near-ties (float32 probabilities more than TOL apart). */
function top1Flips(r16: LensResult, r32: LensResult): string[] {
  const out: string[] = [];
  r32.topIndices.forEach((layer, li) =>
    layer.forEach((cell, p) => {
      const a = cell[0];
      const b = r16.topIndices[li][p][0];
      if (a === b) return;
      const j = cell.indexOf(b);
      if (j < 0 || r32.topProbs[li][p][0] - r32.topProbs[li][p][j] > TOL) out.push(`layer ${r32.layers[li]} pos ${p}: ${b} instead of ${a}`);
    }),
  );
  return out;
}

describe.each(CASES)('%s in float16', (name) => {
  let m16: LensModel;
  let m32: LensModel;
  afterAll(async () => {
    await m16?.close();
    await m32?.close();
  });

  it('stays within 2e-3 of float32 probabilities with the same top-1', async () => {
    const dir = makeCheckpoint(RECIPES[name]);
    m16 = await openModel(dir, { device: 'cpu', dtype: 'float16' });
    m32 = await openModel(dir, { device: 'cpu' });
    expect(m16.info.computeType).toBe('float16');
    expect(m32.info.computeType).toBe('float32');
    expect(m16.info.dtype).toBe(m32.info.dtype); // the checkpoint's dtype, not the compute type

    const opts = { topK: 5, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] as const };
    const r16 = await m16.lens(PROMPT, { ...opts, points: [...opts.points] });
    const r32 = await m32.lens(PROMPT, { ...opts, points: [...opts.points] });
    const ref = referenceLens(dir, idsOf(r16));
    const block = deviation(r16, ref.logProbs);
    const attn = deviation({ ...r16.attention!, layers: r16.layers }, ref.attnLogProbs);
    measured.push(`  ${name.padEnd(20)} block ${block.maxProbError.toExponential(2)}  after-attention ${attn.maxProbError.toExponential(2)}`);
    expect(block.maxProbError).toBeLessThanOrEqual(TOL);
    expect(attn.maxProbError).toBeLessThanOrEqual(TOL);
    expect(top1Flips(r16, r32)).toEqual([]);
    expect(top1Flips({ ...r16, ...r16.attention! } as LensResult, { ...r32, ...r32.attention! } as LensResult)).toEqual([]);
  });
});

describe('float16 specifics', () => {
  it('a padded batch under a sliding window stays finite and equals the unbatched runs', async () => {
    // −1e9 in the mask would be −inf in float16; fully masked padded rows would then turn to NaN.
    const m = await openModel(makeCheckpoint(RECIPES['mistral-window4']), { device: 'cpu', dtype: 'float16' });
    try {
      const prompts = ['Hello', 'The capital of France is Paris, and'];
      const batch = await m.lensBatch(prompts.map((prompt) => ({ prompt, options: { topK: 3, trackAcrossLayers: true } })));
      for (const [i, prompt] of prompts.entries()) {
        const alone = await m.lens(prompt, { topK: 3, trackAcrossLayers: true });
        const b = batch[i] as LensResult;
        expect(b.topIndices).toEqual(alone.topIndices);
        b.topProbs.flat(2).forEach((p, j) => expect(Math.abs(p - alone.topProbs.flat(2)[j])).toBeLessThan(1e-4));
        expect(b.topProbs.flat(2).every(Number.isFinite)).toBe(true);
      }
    } finally {
      await m.close();
    }
  });

  it('stats run in float16 and stay close to float32', async () => {
    const dir = makeCheckpoint(RECIPES['llama-gqa-tied']);
    const [m16, m32] = await Promise.all([openModel(dir, { device: 'cpu', dtype: 'float16' }), openModel(dir, { device: 'cpu' })]);
    try {
      const [s16, s32] = [(await m16.lens('Hello world', { stats: true })).stats!, (await m32.lens('Hello world', { stats: true })).stats!];
      s16.entropy.flat().forEach((e, i) => expect(Math.abs(e - s32.entropy.flat()[i])).toBeLessThan(1e-2));
      s16.klToFinal.flat().forEach((e, i) => expect(Math.abs(e - s32.klToFinal.flat()[i])).toBeLessThan(1e-2));
    } finally {
      await Promise.all([m16.close(), m32.close()]);
    }
  });

  it('rejects an unknown dtype', async () => {
    await expect(openModel(makeCheckpoint(RECIPES['gpt2-tiny']), { device: 'cpu', dtype: 'int8' as never })).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
    });
  });

  it('float16 constants are stored as bit patterns in int32_data', () => {
    const g = new GraphBuilder('t', 'float16');
    const x = g.input('x', 'float', [2]);
    g.output(g.toFloat32(g.op('Mul', [g.toCompute(x), g.constFloat([1.5, -65504], [2])])), 'y', 'float', [2]);
    const model = onnxProto.onnx.ModelProto.decode(g.toBytes());
    const c = model.graph!.initializer!.find((t) => t.dims!.length === 1)!;
    expect(c.dataType).toBe(onnxProto.onnx.TensorProto.DataType.FLOAT16);
    expect(c.int32Data).toEqual([0x3e00, 0xfbff]);
  });
});
