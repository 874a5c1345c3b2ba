// Every issue-2 recipe against the independent float64 reference (test/helpers/reference.ts).
import { afterAll, describe, expect, it } from 'vitest';
import { type LensModel, openModel } from '../../src/lens/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { referenceLens } from '../helpers/reference.js';
import { expectMatchesReference, idsOf } from './helpers.js';

const CASES = [
  'gpt2-tiny',
  'gpt2-prefixless',
  'gpt2-untied',
  'gpt2-f16',
  'gpt2-bf16-sharded',
  'llama-gqa-tied',
  'llama-gqa-tied-bf16',
  'llama-gqa-tied-sharded',
  'llama-headdim-untied',
  'llama31-rope',
  'llama31-rope-v5',
  'llama-f16-sharded',
  'mistral-tiny',
  'mistral-window4',
  'qwen2-tiny',
  'qwen2-untied-bf16',
] as const;

const PROMPTS = ['The capital of France is Paris, and the capital of Italy is', 'Hello'];
const TOL = 1e-5;

describe.each(CASES)('%s matches the float64 reference', (name) => {
  let model: LensModel;
  afterAll(() => model?.close());

  it.each(PROMPTS)('prompt %j: top-k, trajectories, after-attention lens and the final distribution', async (prompt) => {
    model ??= await openModel(makeCheckpoint(RECIPES[name]), { device: 'cpu' });
    const r = await model.lens(prompt, { topK: 5, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
    const ref = referenceLens(makeCheckpoint(RECIPES[name]), idsOf(r));
    expectMatchesReference(r, ref, model.info.numLayers, TOL);
  });
});
