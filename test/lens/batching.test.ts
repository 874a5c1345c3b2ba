// How a lensBatch is cut up: prompts of very different lengths run as separate padded passes, head
// calls stay at a solo request's size on CPU, and every result still equals the prompt run alone.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lengthGroups } from '../../src/lens/batching.js';
import { type LensModel, type LensResult, openModel } from '../../src/lens/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

describe('lengthGroups', () => {
  it('keeps similar lengths together and splits when padding would pass the share', () => {
    expect(lengthGroups([20, 21, 19, 22])).toEqual([[0, 1, 2, 3]]);
    // 40 and 10: one pass would be 80 rows for 50 real ones (37.5% padding).
    expect(lengthGroups([10, 40, 38, 11])).toEqual([[1, 2], [0, 3]]);
    expect(lengthGroups([10, 40], 1)).toEqual([[0, 1]]);
    expect(lengthGroups([5])).toEqual([[0]]);
    expect(lengthGroups([])).toEqual([]);
    // Exactly at the share is still one pass: 3 × 8 = 24 rows, 6 of them padding.
    expect(lengthGroups([8, 8, 2], 0.25)).toEqual([[0, 1, 2]]);
  });

  it('every group stays within the share and every index appears once', () => {
    let s = 7;
    const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let trial = 0; trial < 200; trial++) {
      const lengths = Array.from({ length: 1 + Math.floor(rand() * 12) }, () => 1 + Math.floor(rand() * 100));
      const groups = lengthGroups(lengths, 0.25);
      expect(groups.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
      for (const g of groups) {
        const longest = Math.max(...g.map((i) => lengths[i]));
        const rows = g.reduce((a, i) => a + lengths[i], 0);
        expect(g.length * longest - rows).toBeLessThanOrEqual(0.25 * g.length * longest + 1e-9);
      }
    }
  });
});

describe('a batch of mixed lengths', () => {
  let model: LensModel;
  beforeAll(async () => {
    model = await openModel(makeCheckpoint(RECIPES['gpt2-tiny']), { device: 'cpu', batching: { headRows: 7 } });
  });
  afterAll(async () => {
    await model?.close();
  });

  it('runs as length groups, head calls of a few rows, each result equal to the prompt alone', async () => {
    const prompts = [
      'The capital of France is Paris. The capital of Germany is Berlin.',
      'Hi',
      'The capital of Italy is Rome. The capital of Spain is Madrid. The',
      'Hello there',
    ];
    const options = { topK: 3, trackAcrossLayers: true, stats: true };
    const alone: LensResult[] = [];
    for (const p of prompts) alone.push(await model.lens(p, options));
    const lengths = alone.map((r) => r.tokens.length);
    expect(lengthGroups(lengths)).toEqual([[0, 2], [1, 3]]);
    const batch = (await model.lensBatch(prompts.map((prompt) => ({ prompt, options })))) as LensResult[];
    batch.forEach((r, i) => {
      expect(r.timings.batchSize).toBe(2);
      expect(r.tokens).toEqual(alone[i].tokens);
      expect(r.topIndices).toEqual(alone[i].topIndices);
      r.topProbs.flat(2).forEach((p, j) => expect(Math.abs(p - alone[i].topProbs.flat(2)[j])).toBeLessThan(1e-6));
      expect(r.tracked!.map((t) => t.tokenIds)).toEqual(alone[i].tracked!.map((t) => t.tokenIds));
      // Float32 rounding differs between a 2-row and a 1-row pass (~1e-6 relative).
      r.stats!.entropy.flat().forEach((e, j) => expect(e).toBeCloseTo(alone[i].stats!.entropy.flat()[j], 4));
    });
  });

  it('keeps generating requests out of the padded passes; each result equals the request alone', async () => {
    const plain = ['The capital of Italy is Rome. The capital of Spain is Madrid. The', 'Hi'];
    const gen = { prompt: 'The capital of France is', options: { topK: 3, generate: { maxNewTokens: 2 } } };
    const soloGen = await model.lens(gen.prompt, gen.options);
    const soloPlain: LensResult[] = [];
    for (const p of plain) soloPlain.push(await model.lens(p, { topK: 3 }));
    const [a, g, b] = (await model.lensBatch([{ prompt: plain[0], options: { topK: 3 } }, gen, { prompt: plain[1], options: { topK: 3 } }])) as LensResult[];
    expect(g.generation?.newTokens).toBe(2);
    expect(g.tokens).toEqual(soloGen.tokens);
    expect(g.topIndices).toEqual(soloGen.topIndices);
    for (const [r, solo] of [[a, soloPlain[0]], [b, soloPlain[1]]] as const) {
      expect(r.generation).toBeUndefined();
      // 'Hi' and the long prompt differ too much in length to share a pass.
      expect(r.timings.batchSize).toBe(1);
      expect(r.tokens).toEqual(solo.tokens);
      expect(r.topIndices).toEqual(solo.topIndices);
    }
  });
});
