// compareLens against the independent float64 reference: KL both ways, JS and top-1 differences per
// aligned cell, for two prompts under one model and for two models sharing a tokenizer (here of
// different depth, layers paired explicitly, and one of them generating).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareLens, type CompareSide, type LensModel, type LensOptions, openModel } from '../../src/lens/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { referenceLens } from '../helpers/reference.js';

const TOL = 1e-5;

/** KL(a‖b), KL(b‖a), JS(a, b) of two log-softmax rows, in float64. */
function referenceDivergences(la: Float64Array, lb: Float64Array): { kl: number; klReverse: number; js: number } {
  let kl = 0;
  let klReverse = 0;
  let js = 0;
  for (let i = 0; i < la.length; i++) {
    const pa = Math.exp(la[i]);
    const pb = Math.exp(lb[i]);
    const lm = Math.log(0.5 * (pa + pb));
    kl += pa * (la[i] - lb[i]);
    klReverse += pb * (lb[i] - la[i]);
    if (pa > 0) js += 0.5 * pa * (la[i] - lm);
    if (pb > 0) js += 0.5 * pb * (lb[i] - lm);
  }
  return { kl, klReverse, js };
}

async function side(model: LensModel, prompt: string, options: LensOptions = {}): Promise<CompareSide> {
  let normed: Float32Array[] = [];
  const result = await model.lens(prompt, { ...options, onNormed: (n) => (normed = n) });
  return { model, result, normed };
}

function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

describe('compareLens', () => {
  let tiny: LensModel;
  let untied: LensModel;
  let other: LensModel;
  let otherDir: string;
  beforeAll(async () => {
    tiny = await openModel(makeCheckpoint(RECIPES['gpt2-tiny']), { device: 'cpu' });
    untied = await openModel(makeCheckpoint(RECIPES['gpt2-untied']), { device: 'cpu' });
  });
  afterAll(async () => {
    await tiny?.close();
    await untied?.close();
    await other?.close();
    if (otherDir) rmSync(otherDir, { recursive: true, force: true });
  });

  it('two prompts under one model: every aligned cell equals the reference, up to the shorter prompt', async () => {
    const a = await side(tiny, 'The capital of France is Paris');
    const b = await side(tiny, 'The capital of Spain is');
    const c = await compareLens(a, b);
    const ids = (s: CompareSide) => s.result.tokens.map((t) => t.id);
    expect(c.positions).toBe(Math.min(a.result.tokens.length, b.result.tokens.length));
    expect(c.sameToken).toEqual(ids(a).slice(0, c.positions).map((id, p) => id === ids(b)[p]));
    const refA = referenceLens(makeCheckpoint(RECIPES['gpt2-tiny']), ids(a));
    const refB = referenceLens(makeCheckpoint(RECIPES['gpt2-tiny']), ids(b));
    let differs = 0;
    c.layersA.forEach((l, li) => {
      for (let p = 0; p < c.positions; p++) {
        const ref = referenceDivergences(refA.logProbs[l][p], refB.logProbs[l][p]);
        expect(Math.abs(c.kl[li][p] - ref.kl)).toBeLessThanOrEqual(TOL);
        expect(Math.abs(c.klReverse[li][p] - ref.klReverse)).toBeLessThanOrEqual(TOL);
        expect(Math.abs(c.js[li][p] - ref.js)).toBeLessThanOrEqual(TOL);
        expect(c.top1Differs[li][p]).toBe(argmax(refA.logProbs[l][p]) !== argmax(refB.logProbs[l][p]));
        if (c.top1Differs[li][p]) differs++;
        // Identical prefixes give identical distributions.
        if (c.sameToken.slice(0, p + 1).every(Boolean)) expect(c.js[li][p]).toBeLessThan(1e-9);
      }
    });
    expect(differs).toBeGreaterThan(0);
  });

  it('two models sharing a tokenizer, layers paired explicitly, one side generating', async () => {
    const prompt = 'Hello world, this is';
    const a = await side(tiny, prompt, { layers: [1, 2], generate: { maxNewTokens: 3 } });
    const b = await side(untied, prompt, { layers: [0, 1] });
    const c = await compareLens(a, b);
    expect(c.positions).toBe(b.result.tokens.length);
    expect(c.layersA).toEqual([1, 2]);
    expect(c.layersB).toEqual([0, 1]);
    const refA = referenceLens(makeCheckpoint(RECIPES['gpt2-tiny']), a.result.tokens.map((t) => t.id));
    const refB = referenceLens(makeCheckpoint(RECIPES['gpt2-untied']), b.result.tokens.map((t) => t.id));
    for (let li = 0; li < 2; li++) {
      for (let p = 0; p < c.positions; p++) {
        const ref = referenceDivergences(refA.logProbs[c.layersA[li]][p], refB.logProbs[c.layersB[li]][p]);
        expect(Math.abs(c.kl[li][p] - ref.kl)).toBeLessThanOrEqual(TOL);
        expect(Math.abs(c.klReverse[li][p] - ref.klReverse)).toBeLessThanOrEqual(TOL);
        expect(Math.abs(c.js[li][p] - ref.js)).toBeLessThanOrEqual(TOL);
        expect(c.js[li][p]).toBeLessThanOrEqual(Math.LN2);
      }
    }
  });

  it('refuses models with different tokenizers and unpaired layer lists, with codes', async () => {
    // The same weights with one more added token in tokenizer.json: ids no longer mean the same.
    otherDir = mkdtempSync(join(tmpdir(), 'lensgate-tok-'));
    cpSync(makeCheckpoint(RECIPES['gpt2-tiny']), otherDir, { recursive: true });
    const tok = JSON.parse(readFileSync(join(otherDir, 'tokenizer.json'), 'utf8'));
    tok.added_tokens.push({ id: 50257, content: '<|extra|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    writeFileSync(join(otherDir, 'tokenizer.json'), JSON.stringify(tok));
    other = await openModel(otherDir, { device: 'cpu' });
    const a = await side(tiny, 'Hello');
    await expect(compareLens(a, await side(other, 'Hello'))).rejects.toMatchObject({ code: 'TOKENIZER_MISMATCH' });
    await expect(compareLens(a, await side(untied, 'Hello'))).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
  });
});
