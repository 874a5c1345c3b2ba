// The embedded default model does what its model card claims (models/tiny-facts-gpt2/expectations.json,
// computed independently in PyTorch by training/export.py).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LensModel, openModel } from '../../src/lens/index.js';

const DIR = join(import.meta.dirname, '..', '..', 'models', 'tiny-facts-gpt2');

interface Expectation {
  prompt: string;
  prompt_ids: number[];
  expected_token: string;
  expected_id: number;
  last_layer_top1_id: number;
  last_layer_top1_prob: number;
  first_correct_layer: number;
  per_layer_top1_ids: number[];
}

const card = JSON.parse(readFileSync(join(DIR, 'expectations.json'), 'utf8')) as { n_layer: number; prompts: Expectation[] };

describe('embedded default model (tiny-facts-gpt2)', () => {
  let model: LensModel;
  beforeAll(async () => {
    model = await openModel(DIR, { device: 'cpu' });
  });
  afterAll(() => model?.close());

  it('loads as a gpt2 with the layer count of its card and fits the 25 MB budget', async () => {
    expect(model.info.modelType).toBe('gpt2');
    expect(model.info.numLayers).toBe(card.n_layer);
    const { statSync, readdirSync } = await import('node:fs');
    const bytes = readdirSync(DIR).reduce((a, f) => a + statSync(join(DIR, f)).size, 0);
    expect(bytes).toBeLessThanOrEqual(25 * 2 ** 20);
  });

  it('the card lists held-out factual prompts', () => {
    expect(card.prompts.length).toBeGreaterThanOrEqual(5);
  });

  it.each(card.prompts.map((p) => [p.prompt, p] as const))('%j → the right answer at the last layer, emerging where the card says', async (_prompt, e) => {
    const r = await model.lens(e.prompt, { topK: 5 });
    expect(r.tokens.map((t) => t.id)).toEqual(e.prompt_ids);
    const last = r.tokens.length - 1;
    const top1 = r.topIndices.map((layer) => layer[last][0]);
    expect(model.decode(e.expected_id)).toBe(e.expected_token);
    expect(top1[top1.length - 1]).toBe(e.expected_id);
    expect(top1).toEqual(e.per_layer_top1_ids);
    expect(Math.abs(r.topProbs[r.layers.length - 1][last][0] - e.last_layer_top1_prob)).toBeLessThan(1e-4);
    expect(top1.indexOf(e.expected_id)).toBe(e.first_correct_layer);
  });

  it('shows the README demo: " Paris" emerges in a later layer for "The capital of France is"', async () => {
    const r = await model.lens('The capital of France is', { topK: 5, trackAcrossLayers: true });
    const last = r.tokens.length - 1;
    const top1 = r.topIndices.map((layer) => model.decode(layer[last][0]));
    expect(top1[top1.length - 1]).toBe(' Paris');
    expect(top1[0]).not.toBe(' Paris');
  });
});
