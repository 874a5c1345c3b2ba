// Identical requests are answered from the result store without running the model: Query.lens and
// Subscription.lensLayers (the stored result's layers are replayed in the live order), and only
// once the model's content hash is known.

import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensDocument, LensLayersDocument } from '../../src/client/graphql.js';
import { modelContentHash } from '../../src/checkpoint/content-hash.js';
import { openModel } from '../../src/lens/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { collect, http, instrument, sseClient, startGateway, type Gateway, type Instrumented } from '../server/harness.js';

let gw: Gateway;
let probe: Instrumented;
let dir: string;
const input = { model: 'gpt2-tiny', prompt: 'The quick brown fox jumps', points: ['BLOCK_OUTPUT' as const, 'ATTENTION_OUTPUT' as const] };

beforeAll(async () => {
  dir = makeCheckpoint(RECIPES['gpt2-tiny']);
  probe = instrument(await openModel(dir, { id: 'gpt2-tiny', device: 'cpu' }));
  gw = await startGateway([probe.model]);
});
afterAll(async () => {
  await gw.stop();
  await probe.model.close();
});

test('nothing is cached before the content hash is known; afterwards identical requests skip the model', async () => {
  const a = await http(gw.url, LensDocument, { input });
  const b = await http(gw.url, LensDocument, { input });
  expect([a.data!.lens.cached, b.data!.lens.cached]).toEqual([false, false]);
  expect(b.data!.lens.id).not.toBe(a.data!.lens.id);

  gw.registry.setContentHash('gpt2-tiny', await modelContentHash(dir));
  const c = await http(gw.url, LensDocument, { input });
  const runs = probe.batchSizes.length;
  const d = await http(gw.url, LensDocument, { input });
  expect(probe.batchSizes.length).toBe(runs);
  expect(c.data!.lens.cached).toBe(false);
  expect(d.data!.lens.cached).toBe(true);
  expect(d.data!.lens.id).toBe(c.data!.lens.id);
  expect(d.data!.lens.topProbs).toEqual(c.data!.lens.topProbs);

  // Any option that changes the result is a different request.
  for (const change of [{ topK: 3 }, { layers: [2, 0] }, { stats: true }, { trackAcrossLayers: true }, { prompt: 'The quick brown fox' }, { generate: { maxNewTokens: 2 } }]) {
    const other = await http(gw.url, LensDocument, { input: { ...input, ...change } });
    expect(other.data!.lens.cached, JSON.stringify(change)).toBe(false);
  }
  // Same request spelled differently (layer order, explicit defaults) is the same request.
  await http(gw.url, LensDocument, { input: { ...input, layers: [0, 1, 2] } });
  const spelled = await http(gw.url, LensDocument, { input: { ...input, layers: [2, 1, 0], topK: 5, stats: false } });
  expect(spelled.data!.lens.cached).toBe(true);
  expect(gw.registry.get('gpt2-tiny')!.cache).toEqual({ hits: 2, misses: 8 });
});

test('a cached subscription replays the same events a live run sent, without running the model', async () => {
  const sub = { input: { ...input, prompt: 'Paris is the capital of' } };
  const live = await collect(sseClient(gw.url), LensLayersDocument, sub);
  const runs = probe.batchSizes.length;
  const replay = await collect(sseClient(gw.url), LensLayersDocument, sub);
  expect(probe.batchSizes.length).toBe(runs);
  for (const e of [...live, ...replay]) expect(e.errors).toBeUndefined();
  const strip = (events: typeof live) =>
    events.map((e) => {
      const ev = e.data!.lensLayers;
      return ev.__typename === 'LensCompleted' ? { ...ev, result: { ...ev.result, cached: null } } : ev;
    });
  expect(strip(replay)).toEqual(strip(live));
  const cachedFlag = (events: typeof live) => {
    const ev = events.at(-1)!.data!.lensLayers;
    return ev.__typename === 'LensCompleted' ? ev.result.cached : undefined;
  };
  expect([cachedFlag(live), cachedFlag(replay)]).toEqual([false, true]);
  expect(live.map((e) => e.data!.lensLayers.__typename)).toEqual(['LensStarted', ...Array(6).fill('LayerResult'), 'LensCompleted']);
});
