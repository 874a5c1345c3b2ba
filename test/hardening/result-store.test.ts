// The result store is bounded by bytes and time, keeps results packed in typed arrays, and says
// what it evicted in /metrics.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensDocument, LensResultByIdDocument } from '../../src/client/graphql.js';
import type { LensModel, LensResult } from '../../src/lens/types.js';
import { packResult, unpackResult } from '../../src/server/packed-result.js';
import { MemoryResultStore, type StoredResult } from '../../src/server/result-store.js';
import { http, startGateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

let model: LensModel;
let full: LensResult;

beforeAll(async () => {
  model = await openTinyGpt2();
  full = await model.lens('The capital of France is Paris and the capital of Italy is', {
    topK: 20,
    trackAcrossLayers: true,
    stats: true,
    points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'],
  });
});
afterAll(() => model.close());

const record = (id: string, createdAt = new Date()): StoredResult => ({ id, modelId: 'gpt2-tiny', prompt: 'p', createdAt, result: full });

test('packing into typed arrays round-trips every field exactly', async () => {
  const packed = await packResult(full);
  expect(packed.block.topIndices.data).toBeInstanceOf(Int32Array);
  expect(packed.block.topProbs.data).toBeInstanceOf(Float64Array);
  expect(packed.attention?.tracked?.probs).toBeInstanceOf(Float64Array);
  expect(await unpackResult(packed)).toEqual(full);
});

test('a stored result reads back equal to the computed one', async () => {
  const store = new MemoryResultStore();
  await store.put(record('a'));
  expect((await store.get('a'))?.result).toEqual(full);
});

test('the byte budget holds: oldest results go first and are counted', async () => {
  const one = new MemoryResultStore();
  await one.put(record('x'));
  const size = one.stats().bytes;
  expect(size).toBeGreaterThan(0);
  const store = new MemoryResultStore({ maxBytes: Math.floor(size * 3.5) });
  for (let i = 0; i < 10; i++) await store.put(record(`r${i}`));
  const stats = store.stats();
  expect(stats.bytes).toBeLessThanOrEqual(stats.maxBytes);
  expect(stats.results).toBe(3);
  expect(stats.evictions.bytes).toBe(7);
  expect(await store.get('r0')).toBeNull();
  expect(await store.get('r9')).not.toBeNull();
  // A result larger than the whole budget is not kept at all.
  const tiny = new MemoryResultStore({ maxBytes: Math.floor(size / 2) });
  await tiny.put(record('big'));
  expect(await tiny.get('big')).toBeNull();
  expect(tiny.stats().evictions.too_large).toBe(1);
});

test('results expire after their time-to-live', async () => {
  let now = 1_000_000;
  const store = new MemoryResultStore({ ttlMs: 60_000, now: () => now });
  await store.put(record('old'));
  now += 30_000;
  await store.put(record('new'));
  now += 40_000;
  await expect(store.get('old')).rejects.toMatchObject({ code: 'RESULT_EXPIRED' });
  expect(await store.get('new')).not.toBeNull();
  expect(store.stats()).toMatchObject({ results: 1, evictions: { ttl: 1 } });
});

test('evictions, bytes and count of the store are in /metrics', async () => {
  const gw = await startGateway([model], { store: new MemoryResultStore({ maxBytes: 6000 }) });
  try {
    const ids: string[] = [];
    for (const prompt of ['one', 'two two', 'three three three', 'four']) {
      const r = await http(gw.url, LensDocument, { input: { model: 'gpt2-tiny', prompt, topK: 10 } });
      expect(r.errors).toBeUndefined();
      ids.push(r.data!.lens.id);
    }
    expect((await http(gw.url, LensResultByIdDocument, { id: ids[0] })).data?.lensResult).toBeNull();
    expect((await http(gw.url, LensResultByIdDocument, { id: ids[3] })).data?.lensResult?.id).toBe(ids[3]);
    const text = await (await fetch(`${new URL(gw.url).origin}/metrics`)).text();
    expect(text).toMatch(/^lensgate_result_store_evictions_total\{reason="bytes"\} [1-9]/m);
    expect(text).toMatch(/^lensgate_result_store_bytes [1-9]/m);
    expect(text).toMatch(/^lensgate_result_store_max_bytes 6000$/m);
    expect(text).toMatch(/^lensgate_result_store_results [1-9]/m);
  } finally {
    await gw.stop();
  }
});
