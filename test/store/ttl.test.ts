// A time to live for every result store (memory, the SQLite file, Redis): a result is served until
// its TTL has passed, then lensResult(id) is a RESULT_EXPIRED error (not "unknown"), the identical-
// request cache stops answering with it, and its bytes are freed. Clocks are injected; Redis is real
// (LENSGATE_TEST_REDIS_URL, as .ci/run sets, or a local redis-server).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import sqlite from 'node-sqlite3-wasm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensResultByIdDocument } from '../../src/client/graphql.js';
import type { LensModel, LensResult } from '../../src/lens/types.js';
import { RedisResultStore } from '../../src/server/cluster/redis-store.js';
import { MemoryResultStore, type ResultStore, type StoredResult } from '../../src/server/result-store.js';
import { SqliteResultStore } from '../../src/server/sqlite-store.js';
import { noRedisReason, redisAvailable, startTestRedis, type TestRedis } from '../helpers/redis.js';
import { http, startGateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

let dir: string;
let model: LensModel;
let result: LensResult;
let redis: TestRedis | null = null;
const clients: Redis[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lensgate-ttl-'));
  model = await openTinyGpt2();
  result = await model.lens('The quick brown fox', { topK: 3 });
  if (redisAvailable) redis = await startTestRedis(2);
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await redis?.stop();
  await model.close();
  rmSync(dir, { recursive: true, force: true });
});

const record = (id: string, cacheKey?: string): StoredResult => ({
  id,
  modelId: 'gpt2-tiny',
  prompt: `prompt of ${id}`,
  createdAt: new Date(1_000),
  result,
  ...(cacheKey ? { cacheKey } : {}),
});

type Make = (ttlMs: number, now: () => number) => ResultStore & { close?(): Promise<void> };
const stores: Array<[string, Make | null]> = [
  ['memory', (ttlMs, now) => new MemoryResultStore({ ttlMs, now })],
  ['SQLite', (ttlMs, now) => new SqliteResultStore(join(dir, `ttl-${Math.random()}.db`), { ttlMs, now })],
  [
    'Redis',
    redisAvailable
      ? (ttlMs, now) => {
          const c = new Redis(redis!.url);
          clients.push(c);
          return new RedisResultStore(c, { ttlMs, now });
        }
      : null,
  ],
];

describe.each(stores)('%s store', (name, make) => {
  test.skipIf(!make)(`a result lives for its TTL, then is RESULT_EXPIRED and no longer a cache answer${make ? '' : ` (${noRedisReason})`}`, async () => {
    let now = 1_000_000;
    const store = make!(60_000, () => now);
    try {
      await store.put(record('a', 'key-a'));
      now += 30_000;
      await store.put(record('b'));
      now += 29_999;
      expect((await store.get('a'))?.id).toBe('a');
      expect((await store.findByCacheKey('key-a'))?.id).toBe('a');
      now += 2;
      await expect(store.get('a')).rejects.toMatchObject({ code: 'RESULT_EXPIRED', message: expect.stringContaining('expired') });
      expect(await store.findByCacheKey('key-a')).toBeNull();
      // Asked again, still expired (not "unknown"); an id never stored is null; the younger one lives.
      await expect(store.get('a')).rejects.toMatchObject({ code: 'RESULT_EXPIRED' });
      expect(await store.get('never')).toBeNull();
      expect((await store.get('b'))?.id).toBe('b');
      // A put sweeps: b expires without being asked for, and its bytes are freed.
      now += 60_000;
      await store.put(record('c'));
      await expect(store.get('b')).rejects.toMatchObject({ code: 'RESULT_EXPIRED' });
      if (store.stats) expect(store.stats()).toMatchObject({ results: 1, evictions: { ttl: 2 } });
      if (name === 'Redis') {
        const c = clients[clients.length - 1];
        expect(Number(await c.get('lensgate:results:bytes'))).toBe(await c.strlen('lensgate:result:c'));
      }
    } finally {
      await store.close?.();
    }
  });
});

test('SQLite: expiry survives a reopen, and a file from before TTLs gains the column', async () => {
  const file = join(dir, 'reopen.db');
  let now = 5_000;
  const first = new SqliteResultStore(file, { ttlMs: 1_000, now: () => now });
  await first.put(record('x'));
  now += 2_000;
  await expect(first.get('x')).rejects.toMatchObject({ code: 'RESULT_EXPIRED' });
  await first.close();
  const again = new SqliteResultStore(file, { ttlMs: 1_000, now: () => now });
  await expect(again.get('x')).rejects.toMatchObject({ code: 'RESULT_EXPIRED' });
  await again.close();

  // The results table as the store wrote it before results had a time to live.
  const old = join(dir, 'old.db');
  const db = new sqlite.Database(old);
  db.exec(`CREATE TABLE results (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, model_id TEXT NOT NULL,
    prompt TEXT NOT NULL, created_at INTEGER NOT NULL, cache_key TEXT, bytes INTEGER NOT NULL, body BLOB NOT NULL)`);
  db.close();
  const upgraded = new SqliteResultStore(old, { ttlMs: 1_000, now: () => now });
  await upgraded.put(record('y'));
  expect((await upgraded.get('y'))?.id).toBe('y');
  now += 1_000;
  await expect(upgraded.get('y')).rejects.toMatchObject({ code: 'RESULT_EXPIRED' });
  await upgraded.close();
});

test('GraphQL: lensResult of an expired result is a RESULT_EXPIRED error; an unknown id is null', async () => {
  let now = Date.now();
  const gw = await startGateway([model], { store: new MemoryResultStore({ ttlMs: 60_000, now: () => now }) });
  try {
    const first = await http(gw.url, LensResultByIdDocument, { id: 'nope' });
    expect(first.errors).toBeUndefined();
    expect(first.data!.lensResult).toBeNull();
    const computed = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ lens(input: { model: "gpt2-tiny", prompt: "Hi" }) { id } }' }),
    }).then((r) => r.json() as Promise<{ data: { lens: { id: string } } }>);
    const id = computed.data.lens.id;
    expect((await http(gw.url, LensResultByIdDocument, { id })).data!.lensResult).not.toBeNull();
    now += 60_001;
    const gone = await http(gw.url, LensResultByIdDocument, { id });
    expect(gone.errors?.[0]?.extensions?.code).toBe('RESULT_EXPIRED');
    expect(gone.data?.lensResult ?? null).toBeNull();
  } finally {
    await gw.stop();
  }
});
