// The SQLite result store: round trip, persistence across reopen, oldest-first eviction under the
// byte budget, a stale lock from a killed owner, and the model content hash it remembers.

import { cpSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync, closeSync, mkdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { contentFiles, modelContentHash, type DigestMemo } from '../../src/checkpoint/content-hash.js';
import type { LensModel, LensResult } from '../../src/lens/types.js';
import type { StoredResult } from '../../src/server/result-store.js';
import { SqliteResultStore } from '../../src/server/sqlite-store.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { openTinyGpt2 } from '../server/models.js';

let dir: string;
let model: LensModel;
let result: LensResult;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lensgate-store-'));
  model = await openTinyGpt2();
  result = await model.lens('The quick brown fox', { trackAcrossLayers: true, stats: true });
});
afterAll(async () => {
  await model.close();
  rmSync(dir, { recursive: true, force: true });
});

function record(id: string, createdAt: number, cacheKey?: string): StoredResult {
  return { id, modelId: 'gpt2-tiny', prompt: `prompt of ${id}`, createdAt: new Date(createdAt), result, ...(cacheKey ? { cacheKey } : {}) };
}

describe('SqliteResultStore', () => {
  test('stores, finds by id and cache key, and keeps everything across close and reopen', async () => {
    const file = join(dir, 'a', 'results.db');
    const store = new SqliteResultStore(file);
    await store.put(record('r1', 1_000, 'k'));
    await store.put(record('r2', 2_000, 'k'));
    await store.put({ ...record('r3', 3_000), cached: true });
    expect(await store.get('r1')).toEqual(record('r1', 1_000, 'k'));
    expect((await store.findByCacheKey('k'))!.id).toBe('r2');
    expect(await store.findByCacheKey('other')).toBeNull();
    expect(await store.get('missing')).toBeNull();
    await store.close();

    const again = new SqliteResultStore(file);
    const r3 = await again.get('r3');
    // The per-response flag is not part of what is stored.
    expect(r3).toEqual(record('r3', 3_000));
    expect(r3!.result.topProbs).toEqual(result.topProbs);
    expect(r3!.createdAt).toBeInstanceOf(Date);
    expect(again.stats().results).toBe(3);
    await again.close();
  });

  test('evicts oldest first once the byte budget is exceeded', async () => {
    const file = join(dir, 'budget.db');
    const one = Buffer.byteLength(JSON.stringify({ ...record('x0', 0), createdAt: 0 }));
    const store = new SqliteResultStore(file, { maxBytes: Math.floor(one * 2.5) });
    for (let i = 0; i < 5; i++) await store.put(record(`x${i}`, i, `key${i}`));
    expect(await store.get('x0')).toBeNull();
    expect(await store.get('x2')).toBeNull();
    expect(await store.findByCacheKey('key1')).toBeNull();
    expect((await store.get('x3'))!.id).toBe('x3');
    expect((await store.get('x4'))!.id).toBe('x4');
    const held = store.stats();
    expect(held.results).toBe(2);
    expect(held.evictions.bytes).toBe(3);
    expect(held.bytes).toBeLessThanOrEqual(one * 2.5);
    await store.close();
    // The running total is recomputed from the file on open.
    const reopened = new SqliteResultStore(file, { maxBytes: Math.floor(one * 2.5) });
    expect(reopened.stats()).toEqual({ ...held, evictions: { bytes: 0, count: 0, ttl: 0, too_large: 0 } });
    await reopened.close();
  });

  test('a lock left by a killed owner is cleared; a live owner is refused', async () => {
    const file = join(dir, 'locked.db');
    const store = new SqliteResultStore(file);
    await store.put(record('kept', 1));
    await store.close();
    // What `kill -9` leaves: the VFS lock directory and the owner's pid (of a process now gone).
    const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    mkdirSync(`${file}.lock`);
    writeFileSync(`${file}.owner`, gone);
    const recovered = new SqliteResultStore(file);
    expect((await recovered.get('kept'))!.id).toBe('kept');
    expect(readFileSync(`${file}.owner`, 'utf8')).toBe(String(process.pid));
    await recovered.close();
    expect(existsSync(`${file}.owner`)).toBe(false);

    writeFileSync(`${file}.owner`, String(process.ppid));
    expect(() => new SqliteResultStore(file)).toThrow(/in use by process/);
    rmSync(`${file}.owner`);
  });
});

describe('model content hash', () => {
  test('covers every byte the loader reads; digests are remembered per unchanged file', async () => {
    const src = makeCheckpoint(RECIPES['gpt2-tiny']);
    const copy = join(dir, 'copy');
    cpSync(src, copy, { recursive: true });
    const names = contentFiles(copy).map((f) => f.slice(copy.length + 1));
    expect(names).toEqual(expect.arrayContaining(['config.json', 'tokenizer.json', 'model.safetensors']));

    const digests = new Map<string, string>();
    let computed = 0;
    const memo: DigestMemo = {
      getDigest: (k) => digests.get(k) ?? null,
      setDigest: (k, d) => (computed++, void digests.set(k, d)),
    };
    const h = await modelContentHash(copy, memo);
    expect(h).toMatch(/^[0-9a-f]{64}$/);
    // Same bytes elsewhere: same hash.
    expect(await modelContentHash(src)).toBe(h);
    const firstPass = computed;
    expect(await modelContentHash(copy, memo)).toBe(h);
    expect(computed).toBe(firstPass);

    // One weight byte changed in place (same size, same header): a retrained checkpoint.
    const weights = join(copy, 'model.safetensors');
    const fd = openSync(weights, 'r+');
    const last = readFileSync(weights).length - 1;
    writeSync(fd, Buffer.from([readFileSync(weights)[last] ^ 0xff]), 0, 1, last);
    closeSync(fd);
    const changed = await modelContentHash(copy, memo);
    expect(changed).not.toBe(h);
    expect(computed).toBe(firstPass + 1);
  });
});
