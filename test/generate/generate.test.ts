// The lens over generated tokens, for every family recipe, against the independent float64
// reference: the tokens written equal the reference's greedy choice (a full rerun per step, no
// cache), and every cell — prompt and generated positions, both read points, trajectories — equals
// the reference lens of the whole final sequence rerun without a cache.
import { afterAll, describe, expect, it } from 'vitest';
import { type LensModel, openModel } from '../../src/lens/index.js';
import { makeCheckpoint, recipe } from '../helpers/fixtures.js';
import { loadReferenceModel, referenceGreedy, referenceLensOf } from '../helpers/reference.js';
import { expectMatchesReference, idsOf } from '../lens/helpers.js';

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
