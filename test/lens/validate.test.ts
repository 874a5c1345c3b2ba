// The one validation of a lens request (src/lens/validate.ts): the model's bounds, a caller's extra
// limits, and a caller's own tokenization (LensOptions.promptIds) used instead of tokenizing again.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LensError } from '../../src/errors.js';
import { type LensModel, openModel } from '../../src/lens/index.js';
import { validate } from '../../src/lens/validate.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

const dims = { id: 'm', numLayers: 4, vocabSize: 50, maxPositions: 8 };
const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e instanceof LensError ? `${e.code}: ${e.message}` : String(e);
  }
  return 'ok';
};

describe('validate', () => {
  it('fills defaults, sorts layers, orders points along the residual stream', () => {
    const v = validate('p', [1, 2], { layers: [3, 0], points: ['ATTENTION_OUTPUT', 'BLOCK_OUTPUT'] }, dims);
    expect(v).toMatchObject({ ids: [1, 2], topK: 5, layers: [0, 3], points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'], track: false, stats: false, maxNewTokens: 0 });
    expect(validate('p', [1], {}, dims).layers).toEqual([0, 1, 2, 3]);
  });

  it('rejects what the model cannot do, naming the bound', () => {
    expect(codeOf(() => validate('', [], {}, dims))).toBe('BAD_USER_INPUT: prompt must not be empty');
    expect(codeOf(() => validate('p', [], {}, dims))).toBe('BAD_USER_INPUT: prompt encodes to zero tokens');
    expect(codeOf(() => validate('p', Array(9).fill(1), {}, dims))).toBe('PROMPT_TOO_LONG: prompt has 9 tokens; m accepts at most 8');
    expect(codeOf(() => validate('p', [50], {}, dims))).toBe('BAD_USER_INPUT: token id 50 is outside the vocabulary (0..49)');
    expect(codeOf(() => validate('p', [1], { topK: 51 }, dims))).toBe('BAD_USER_INPUT: topK must be an integer between 1 and 50, got 51');
    expect(codeOf(() => validate('p', [1], { topK: 2.5 }, dims))).toMatch(/^BAD_USER_INPUT: topK/);
    expect(codeOf(() => validate('p', [1], { layers: [4] }, dims))).toBe('BAD_USER_INPUT: layer 4 is out of range: m has layers 0..3');
    expect(codeOf(() => validate('p', [1], { layers: [2, 2] }, dims))).toBe('BAD_USER_INPUT: layer 2 is listed twice');
    expect(codeOf(() => validate('p', [1], { layers: [] }, dims))).toMatch(/^BAD_USER_INPUT: layers must not be empty/);
    expect(codeOf(() => validate('p', [1], { points: [] }, dims))).toMatch(/^BAD_USER_INPUT: points must not be empty/);
    expect(codeOf(() => validate('p', [1], { points: ['BLOCK_OUTPUT', 'BLOCK_OUTPUT'] }, dims))).toBe('BAD_USER_INPUT: points contains duplicates');
    expect(codeOf(() => validate('p', [1], { generate: { maxNewTokens: 0 } }, dims))).toMatch(/^BAD_USER_INPUT: generate.maxNewTokens must be an integer ≥ 1, got 0/);
    expect(codeOf(() => validate('p', [1, 2], { generate: { maxNewTokens: 7 } }, dims))).toMatch(/^PROMPT_TOO_LONG: prompt \(2 tokens\) \+ maxNewTokens \(7\)/);
  });

  it('a caller\'s limits tighten the model\'s bounds and the message says which applies', () => {
    const limits = { maxTopK: 10, maxNewTokens: 3 };
    expect(codeOf(() => validate('p', [1], { topK: 10 }, dims, limits))).toBe('ok');
    expect(codeOf(() => validate('p', [1], { topK: 11 }, dims, limits))).toBe('BAD_USER_INPUT: topK must be an integer between 1 and 10, got 11');
    expect(codeOf(() => validate('p', [1], { topK: 11 }, { ...dims, vocabSize: 8 }, limits))).toMatch(/between 1 and 8,/);
    expect(codeOf(() => validate('p', [1], { generate: { maxNewTokens: 4 } }, dims, limits))).toBe(
      'BAD_USER_INPUT: generate.maxNewTokens must be an integer ≥ 1 and ≤ 3 (server limit), got 4',
    );
  });
});

describe('LensOptions.promptIds', () => {
  let model: LensModel;
  beforeAll(async () => {
    model = await openModel(makeCheckpoint(RECIPES['gpt2-tiny']), { device: 'cpu' });
  });
  afterAll(async () => {
    await model?.close();
  });

  it('the model runs the ids it was given instead of tokenizing the prompt again', async () => {
    const text = 'The capital of France is';
    const ids = model.tokenize(text).map((t) => t.id);
    const plain = await model.lens(text, { topK: 3 });
    // A different prompt string with the first prompt's ids: the ids decide.
    const given = await model.lens('something else entirely', { topK: 3, promptIds: ids });
    expect(given.tokens).toEqual(plain.tokens);
    expect(given.topIndices).toEqual(plain.topIndices);
    expect(given.topProbs).toEqual(plain.topProbs);
    await expect(model.lens(text, { promptIds: [model.info.vocabSize] })).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
  });
});
