// Query.lensCompare through the gateway: the values equal the core's compareLens on the same
// requests, both results are stored, and incomparable requests get coded errors.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensCompareDocument, LensResultByIdDocument } from '../../src/client/graphql.js';
import { compareLens, type CompareSide, type LensModel, type LensOptions } from '../../src/lens/index.js';
import { http, startGateway, type Gateway } from '../server/harness.js';
import { openDeepGpt2, openTinyGpt2 } from '../server/models.js';

let gw: Gateway;
let tiny: LensModel;
let deep: LensModel;

beforeAll(async () => {
  tiny = await openTinyGpt2();
  deep = await openDeepGpt2();
  gw = await startGateway([tiny, deep]);
});
afterAll(async () => {
  await gw.stop();
  await tiny.close();
  await deep.close();
});

async function side(model: LensModel, prompt: string, options: LensOptions = {}): Promise<CompareSide> {
  let normed: Float32Array[] = [];
  const result = await model.lens(prompt, { ...options, onNormed: (n) => (normed = n) });
  return { model, result, normed };
}

describe('Query.lensCompare', () => {
  test('two prompts under one model', async () => {
    const r = await http(gw.url, LensCompareDocument, {
      a: { model: 'gpt2-tiny', prompt: 'The quick brown fox' },
      b: { model: 'gpt2-tiny', prompt: 'The slow brown dog sleeps' },
    });
    expect(r.errors).toBeUndefined();
    const c = r.data!.lensCompare;
    const direct = await compareLens(await side(tiny, 'The quick brown fox'), await side(tiny, 'The slow brown dog sleeps'));
    expect(c.positions).toBe(direct.positions);
    expect(c.kl).toEqual(direct.kl);
    expect(c.js).toEqual(direct.js);
    expect(c.klReverse).toEqual(direct.klReverse);
    expect(c.top1Differs).toEqual(direct.top1Differs);
    expect(c.sameToken).toEqual(direct.sameToken);
    const stored = await http(gw.url, LensResultByIdDocument, { id: c.a.id });
    expect(stored.data!.lensResult!.id).toBe(c.a.id);
  });

  test('two models of different depth, layers paired, b generating', async () => {
    const a = { model: 'gpt2-tiny', prompt: 'Hello there', layers: [0, 2] };
    const b = { model: 'gpt2-deep', prompt: 'Hello there', layers: [11, 23], generate: { maxNewTokens: 2 } };
    const r = await http(gw.url, LensCompareDocument, { a, b });
    expect(r.errors).toBeUndefined();
    const c = r.data!.lensCompare;
    expect(c.layersB).toEqual([11, 23]);
    expect(c.b.tokens.filter((t) => t.generated)).toHaveLength(2);
    expect(c.positions).toBe(c.a.tokens.length);
    const direct = await compareLens(
      await side(tiny, 'Hello there', { layers: [0, 2] }),
      await side(deep, 'Hello there', { layers: [11, 23], generate: { maxNewTokens: 2 } }),
    );
    expect(c.kl).toEqual(direct.kl);
    expect(c.js).toEqual(direct.js);
  });

  test('coded errors: unpaired layers, unknown model', async () => {
    const unpaired = await http(gw.url, LensCompareDocument, {
      a: { model: 'gpt2-tiny', prompt: 'Hi' },
      b: { model: 'gpt2-deep', prompt: 'Hi' },
    });
    expect(unpaired.errors![0].extensions!.code).toBe('BAD_USER_INPUT');
    const unknown = await http(gw.url, LensCompareDocument, { a: { model: 'gpt2-tiny', prompt: 'Hi' }, b: { model: 'nope', prompt: 'Hi' } });
    expect(unknown.errors![0].extensions!.code).toBe('MODEL_NOT_FOUND');
  });
});
