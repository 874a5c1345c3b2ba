// Bad checkpoints and bad requests fail with a typed LensError that names the problem.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LensError, type LensModel, openModel } from '../../src/lens/index.js';
import { type BrokenKind, makeBrokenCheckpoint, makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

async function openError(dir: string, modelType?: string): Promise<LensError> {
  try {
    const m = await openModel(dir, { device: 'cpu', modelType });
    await m.close();
  } catch (e) {
    expect(e).toBeInstanceOf(LensError);
    return e as LensError;
  }
  throw new Error('openModel succeeded on a broken checkpoint');
}

describe('broken checkpoints', () => {
  const cases: Array<[BrokenKind, string, RegExp]> = [
    ['missing-config', 'CHECKPOINT_INVALID', /config\.json not found/],
    ['missing-weight', 'CHECKPOINT_INVALID', /missing/],
    ['truncated-weights', 'CHECKPOINT_INVALID', /truncated|past the end|short/],
    ['corrupt-header', 'CHECKPOINT_INVALID', /header/],
    ['shape-mismatch', 'CHECKPOINT_INVALID', /shape/],
    ['unknown-model-type', 'UNKNOWN_MODEL_TYPE', /not_a_real_arch.*Supported model types: .*gpt2.*llama/s],
    ['missing-shard', 'CHECKPOINT_INVALID', /shard .* missing/],
  ];
  it.each(cases)('%s → %s naming the problem', async (kind, code, message) => {
    const broken = makeBrokenCheckpoint(kind);
    const err = await openError(broken.dir);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    if (!['missing-config', 'missing-shard', 'truncated-weights', 'corrupt-header'].includes(kind)) {
      expect(err.message).toContain(broken.detail);
    }
  });

  it('a missing directory', async () => {
    expect((await openError('/nonexistent/model')).message).toMatch(/not found/);
  });

  it('an explicit model type that does not exist lists the supported ones', async () => {
    const err = await openError(makeCheckpoint(RECIPES['gpt2-tiny']), 'nope');
    expect(err.code).toBe('UNKNOWN_MODEL_TYPE');
    expect(err.message).toMatch(/qwen2/);
  });

  it('the wrong family for the weights is caught, not silently run', async () => {
    const err = await openError(makeCheckpoint(RECIPES['gpt2-tiny']), 'llama');
    expect(err.code).toBe('CHECKPOINT_INVALID');
  });
});

describe('bad requests', () => {
  let m: LensModel;
  beforeAll(async () => {
    m = await openModel(makeCheckpoint(RECIPES['gpt2-tiny']), { device: 'cpu' });
  });
  afterAll(() => m?.close());

  const bad: Array<[string, () => Promise<unknown>, string, RegExp]> = [
    ['empty prompt', () => m.lens(''), 'BAD_USER_INPUT', /must not be empty/],
    ['prompt longer than max positions', () => m.lens('word '.repeat(200)), 'PROMPT_TOO_LONG', /at most 128/],
    ['k < 1', () => m.lens('Hi', { topK: 0 }), 'BAD_USER_INPUT', /topK/],
    ['k > vocab', () => m.lens('Hi', { topK: 50258 }), 'BAD_USER_INPUT', /topK .*50257/],
    ['non-integer k', () => m.lens('Hi', { topK: 2.5 }), 'BAD_USER_INPUT', /topK/],
    ['layer out of range', () => m.lens('Hi', { layers: [0, 3] }), 'BAD_USER_INPUT', /layer 3 .*0\.\.2/],
    ['negative layer', () => m.lens('Hi', { layers: [-1] }), 'BAD_USER_INPUT', /layer -1/],
    ['duplicate layers', () => m.lens('Hi', { layers: [1, 1] }), 'BAD_USER_INPUT', /layer 1 is listed twice/],
    ['empty layer list', () => m.lens('Hi', { layers: [] }), 'BAD_USER_INPUT', /must not be empty/],
  ];
  it.each(bad)('%s → %s', async (_name, run, code, message) => {
    const err = await run().then(
      () => null,
      (e) => e,
    );
    expect(err).toBeInstanceOf(LensError);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
  });

  it('keeps serving after bad requests', async () => {
    expect((await m.lens('Hi', { topK: 1 })).topIndices).toHaveLength(3);
  });
});
