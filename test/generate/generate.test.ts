// The lens over generated tokens, for every family recipe, against the independent float64
// reference: the tokens written equal the reference's greedy choice (a full rerun per step, no
// cache), and every cell — prompt and generated positions, both read points, trajectories — equals
// the reference lens of the whole final sequence rerun without a cache.
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LensModel, type LensPoint, openModel } from '../../src/lens/index.js';
import { LENS_FILES_D16, LENSED_D16, makeCheckpoint, recipe } from '../helpers/fixtures.js';
import { jacobianTranslator, loadReferenceModel, referenceGreedy, referenceLensOf, tunedTranslator } from '../helpers/reference.js';
import { deviation, expectMatchesReference, idsOf } from '../lens/helpers.js';

const CASES = [
  'gpt2-tiny', // learned positions
  'gpt2-f16',
  'llama-gqa-tied', // GQA
  'mistral-window4', // sliding window smaller than the sequence
  'qwen3-tiny', // q/k norms
  'gptj-tiny', // interleaved partial rotary, parallel block
  'neox-parallel',
  'phi3-tiny', // fused qkv
  'gemma2-tiny', // alternating local/global windows, soft-capping
  'hf-olmo-untied-clip',
  'mixtral-tiny', // experts
] as const;

const PROMPT = 'The capital of France is';
const NEW = 5;
const TOL = 1e-5;

describe.each(CASES)('%s: generation with the KV cache', (name) => {
  let model: LensModel;
  afterAll(() => model?.close());

  it('writes the reference greedy tokens, and every cell equals the reference rerun of the whole sequence', async () => {
    const dir = makeCheckpoint(recipe(name));
    model = await openModel(dir, { device: 'cpu' });
    const refModel = loadReferenceModel(dir);
    const r = await model.lens(PROMPT, { topK: 5, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'], generate: { maxNewTokens: NEW } });
    const prompt = r.tokens.filter((t) => !t.generated).map((t) => t.id);
    expect(prompt).toEqual(model.tokenize(PROMPT).map((t) => t.id));
    expect(r.generation).toMatchObject({ maxNewTokens: NEW, newTokens: NEW, stoppedAtEos: false });
    expect(r.tokens.slice(prompt.length).every((t) => t.generated)).toBe(true);
    expect(r.tokens.slice(prompt.length).map((t) => t.id)).toEqual(referenceGreedy(refModel, prompt, NEW));
    expectMatchesReference(r, referenceLensOf(refModel, idsOf(r)), model.info.numLayers, TOL);
  });
});

// Lens kinds compose with generation: the translators read every generated position too, and the
// tokens written are still the model's own greedy choice (the final layer is never translated).
describe('tuned and Jacobian lenses over generated positions (d 16 Llama, lens files made by PyTorch)', () => {
  const FIX = resolve('test/fixtures/lenses');
  let model: LensModel;
  let dir: string;
  let prompt: number[];
  let greedy: number[];
  const opts = { topK: 5, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] as LensPoint[], generate: { maxNewTokens: NEW } };
  beforeAll(async () => {
    dir = makeCheckpoint(LENSED_D16);
    model = await openModel(dir, { device: 'cpu', lenses: LENS_FILES_D16 });
    prompt = model.tokenize(PROMPT).map((t) => t.id);
    greedy = referenceGreedy(loadReferenceModel(dir), prompt, NEW);
  });
  afterAll(() => model?.close());

  it('TUNED: the reference greedy tokens, every cell equal to the reference translator over the whole sequence', async () => {
    const tuned = await model.lens(PROMPT, { ...opts, lens: 'TUNED' });
    expect(tuned.lens).toBe('TUNED');
    expect(tuned.tokens.slice(prompt.length).map((t) => t.id)).toEqual(greedy);
    expectMatchesReference(tuned, referenceLensOf(loadReferenceModel(dir), idsOf(tuned), tunedTranslator(join(FIX, 'tuned-d16.safetensors'), 4)), 4, TOL);
  });

  it('JACOBIAN (layers 0, 2 and the last): the same tokens, every cell equal to the reference translator', async () => {
    const jac = await model.lens(PROMPT, { ...opts, lens: 'JACOBIAN' });
    expect(jac.tokens.slice(prompt.length).map((t) => t.id)).toEqual(greedy);
    expect(jac.layers).toEqual([0, 2, 3]);
    const ref = referenceLensOf(loadReferenceModel(dir), idsOf(jac), jacobianTranslator(join(FIX, 'jacobian-d16.safetensors'), 4));
    for (const [got, want] of [
      [jac, ref.logProbs],
      [{ ...jac.attention!, layers: jac.layers }, ref.attnLogProbs],
    ] as const) {
      const d = deviation(got, want);
      expect(d.topKMismatches).toEqual([]);
      expect(d.maxProbError).toBeLessThanOrEqual(TOL);
    }
  });
});

// LongRoPE (Phi-3 128k) picks its frequencies by sequence length: up to original_max_position_embeddings
// (32 in the recipe) the short factors, past it the long ones for every position. Generation that
// crosses 32 rebuilds the cache with the long factors; each column is what the model computed when it
// wrote the next token: positions < 32 as the 32-token sequence reads them (short factors), positions
// ≥ 32 as the whole final sequence reads them (long factors).
describe('phi3-longrope: generation across original_max_position_embeddings', () => {
  let model: LensModel;
  afterAll(() => model?.close());

  it('writes the reference greedy tokens (a full rerun per step) and each column matches the reference of its length', async () => {
    const dir = makeCheckpoint(recipe('phi3-longrope'));
    model = await openModel(dir, { device: 'cpu' });
    const refModel = loadReferenceModel(dir);
    const text = Array(7).fill('the quick brown fox').join(' ');
    const prompt = model.tokenize(text).map((t) => t.id);
    expect(prompt.length).toBeGreaterThan(24);
    expect(prompt.length).toBeLessThanOrEqual(30);
    const n = 36 - prompt.length;
    const r = await model.lens(text, { topK: 5, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'], generate: { maxNewTokens: n } });
    expect(r.generation).toMatchObject({ newTokens: n, stoppedAtEos: false });
    const ids = idsOf(r);
    expect(ids.length).toBe(36);
    expect(ids.slice(prompt.length)).toEqual(referenceGreedy(refModel, prompt, n));

    const short = referenceLensOf(refModel, ids.slice(0, 32));
    const long = referenceLensOf(refModel, ids);
    const cols = (from: number, to: number, x: { topIndices: number[][][]; topProbs: number[][][] }) => ({
      layers: r.layers,
      topIndices: x.topIndices.map((layer) => layer.slice(from, to)),
      topProbs: x.topProbs.map((layer) => layer.slice(from, to)),
      tracked: null,
    });
    const refCols = (from: number, to: number, lp: Float64Array[][]) => lp.map((layer) => layer.slice(from, to));
    for (const [got, want] of [
      [cols(0, 32, r), refCols(0, 32, short.logProbs)],
      [cols(0, 32, r.attention!), refCols(0, 32, short.attnLogProbs)],
      [cols(32, 36, r), refCols(32, 36, long.logProbs)],
      [cols(32, 36, r.attention!), refCols(32, 36, long.attnLogProbs)],
    ] as const) {
      const d = deviation(got, want);
      expect(d.topKMismatches).toEqual([]);
      expect(d.maxProbError).toBeLessThanOrEqual(TOL);
    }
    // The switch is real: the long factors read the early positions differently.
    const early = deviation(cols(0, 32, r), refCols(0, 32, long.logProbs));
    expect(early.maxProbError).toBeGreaterThan(1e-4);
  });
});
