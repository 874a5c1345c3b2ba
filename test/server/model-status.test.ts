// Models load independently: the gateway listens at once, each model reports LOADING (with progress)
// → READY or FAILED, lens requests against a model that is not READY get coded errors, and a model
// that fails to load never stops the others. The slow model is a real checkpoint whose load is held
// at a block boundary by its own progress hook (no wall-clock sleeps).

import { print } from 'graphql';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensDocument, ModelsDocument, ModelStatusDocument, type ModelStatusSubscription } from '../../src/client/graphql.js';
import { openModel } from '../../src/lens/index.js';
import type { LoadProgress } from '../../src/lens/types.js';
import { buildApp, type App } from '../../src/server/app.js';
import { ModelRegistry, type ModelOpener, type ModelState } from '../../src/server/models.js';
import { MemoryResultStore } from '../../src/server/result-store.js';
import { gatewayApi } from '../../resolvers/index.js';
import { makeBrokenCheckpoint, makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { collect, http, wsClient } from './harness.js';

const GOOD = makeCheckpoint(RECIPES['gpt2-tiny']);
const BROKEN = makeBrokenCheckpoint('missing-weight');

/** Holds the load of `id` once `layersBuilt` blocks exist, until release(). */
function gate(id: string, layersBuilt: number) {
  let release!: () => void;
  let reached!: (p: LoadProgress) => void;
  const opened = new Promise<void>((r) => (release = r));
  const at = new Promise<LoadProgress>((r) => (reached = r));
  const opener: ModelOpener = (dir, opts) =>
    openModel(dir, {
      ...opts,
      onProgress: async (p) => {
        await opts.onProgress?.(p);
        if (opts.id === id && p.layersBuilt === layersBuilt) {
          reached(p);
          await opened;
        }
      },
    });
  return { opener, release, at };
}

let app: App;
let url: string;
let base: string;
let registry: ModelRegistry;
let loaded: Promise<ModelState[]>;
const held = gate('slow', 1);

beforeAll(async () => {
  registry = new ModelRegistry();
  app = buildApp({ registry, api: gatewayApi({ registry, store: new MemoryResultStore() }), port: 0, host: '127.0.0.1', logging: false });
  ({ url } = await app.start());
  base = new URL(url).origin;
  loaded = registry.load(
    [
      { id: 'good', dir: GOOD },
      { id: 'slow', dir: makeCheckpoint({ ...RECIPES['gpt2-tiny'], name: 'gpt2-tiny-slow', seed: 5 }) },
      { id: 'broken', dir: BROKEN.dir },
    ],
    held.opener,
    'cpu',
  );
  await held.at;
});
afterAll(async () => {
  held.release();
  await loaded;
  await app.stop();
  await registry.close();
});

const lensOf = (model: string) => http(url, LensDocument, { input: { model, prompt: 'The quick brown fox', topK: 2 } });

test('while one model loads: the ready one serves, the loading one reports progress and refuses lens requests', async () => {
  const r = await http(url, ModelsDocument);
  const byId = Object.fromEntries(r.data!.models.map((m) => [m.id, m]));
  expect(r.data!.models.map((m) => m.id)).toEqual(['good', 'slow', 'broken']);
  expect(byId.good).toMatchObject({ status: 'READY', numLayers: 3, error: null, progress: { layersBuilt: 3, layersTotal: 3, fraction: 1 } });
  // Held after its first block: the descriptive fields are known already, the bytes are part-way.
  expect(byId.slow).toMatchObject({ status: 'LOADING', numLayers: 3, modelType: 'gpt2', error: null, progress: { layersBuilt: 1, layersTotal: 3 } });
  const p = byId.slow.progress;
  expect(p.bytesMapped).toBeGreaterThan(0);
  expect(p.bytesMapped).toBeLessThan(p.bytesTotal!);
  expect(p.fraction).toBeCloseTo(p.bytesMapped / p.bytesTotal!, 12);
  // Queued behind the slow one: nothing known yet.
  expect(byId.broken).toMatchObject({ status: 'LOADING', numLayers: null, progress: { layersBuilt: 0, layersTotal: null, bytesTotal: null, fraction: null } });

  const ok = await lensOf('good');
  expect(ok.errors).toBeUndefined();
  expect(ok.data!.lens.layers).toEqual([0, 1, 2]);
  const refused = await lensOf('slow');
  expect(refused.errors?.[0].extensions?.code).toBe('MODEL_LOADING');
  expect(refused.errors?.[0].message).toMatch(/1\/3 layers built/);
});

test('/ready is 503 while any model loads; /ready?model=id answers per model; unknown ids are 404', async () => {
  const all = await fetch(`${base}/ready`);
  expect(all.status).toBe(503);
  const body = (await all.json()) as { ready: boolean; reason: string; models: Array<{ id: string; status: string; layersBuilt: number }> };
  expect(body.reason).toBe('models loading');
  expect(body.models.map((m) => [m.id, m.status, m.layersBuilt])).toEqual([
    ['good', 'READY', 3],
    ['slow', 'LOADING', 1],
    ['broken', 'LOADING', 0],
  ]);
  expect((await fetch(`${base}/ready?model=good`)).status).toBe(200);
  expect((await fetch(`${base}/ready?model=slow`)).status).toBe(503);
  expect((await fetch(`${base}/ready?model=nope`)).status).toBe(404);
  expect((await fetch(`${base}/health`)).status).toBe(200);
});

test('Subscription.modelStatus streams each block of the held load, then READY, then ends; the failed model reports its code', async () => {
  const ws = wsClient(url.replace(/^http/, 'ws'));
  try {
    const events = collect(ws, ModelStatusDocument, { id: 'slow' });
    // Release only once the subscription has its first event (the current state).
    const first = await new Promise<ModelStatusSubscription>((resolve, reject) => {
      const stop = ws.subscribe<ModelStatusSubscription>(
        { query: print(ModelStatusDocument), variables: { id: 'slow' } },
        { next: (v) => (stop(), resolve(v.data!)), error: reject, complete: () => undefined },
      );
    });
    expect(first.modelStatus).toMatchObject({ id: 'slow', status: 'LOADING', progress: { layersBuilt: 1 } });
    held.release();
    const states = await loaded;
    expect(states.map((s) => s.status)).toEqual(['READY', 'READY', 'FAILED']);
    const got = (await events).map((e) => e.data!.modelStatus);
    expect(got.map((m) => `${m.status}:${m.progress.layersBuilt}`)).toEqual(['LOADING:1', 'LOADING:2', 'LOADING:3', 'READY:3']);
    const mapped = got.map((m) => m.progress.bytesMapped);
    expect(mapped).toEqual([...mapped].sort((a, b) => a - b));
    expect(got[3].progress.bytesMapped).toBe(got[3].progress.bytesTotal);

    // Settled models: the subscription sends the state once and ends.
    const done = (await collect(ws, ModelStatusDocument, { id: 'broken' })).map((e) => e.data!.modelStatus);
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ status: 'FAILED', error: { code: 'CHECKPOINT_INVALID' }, numLayers: null });
    expect(done[0].error!.message).toContain(BROKEN.detail);
    // The client never sees the operator's paths.
    expect(done[0].error!.message).not.toContain(BROKEN.dir);
    expect(done[0].error!.message).not.toMatch(/\/tmp\//);

    const unknown = await collect(ws, ModelStatusDocument, { id: 'nope' });
    expect(unknown[0].errors?.[0].extensions?.code).toBe('MODEL_NOT_FOUND');
  } finally {
    await ws.dispose();
  }
});

test('after the loads settle: the failed model gets MODEL_FAILED, the others serve, /ready stays 503 overall', async () => {
  await loaded;
  const failed = await lensOf('broken');
  expect(failed.errors?.[0].extensions?.code).toBe('MODEL_FAILED');
  expect(failed.errors?.[0].message).toMatch(/CHECKPOINT_INVALID/);
  for (const id of ['good', 'slow']) expect((await lensOf(id)).data!.lens.layers).toEqual([0, 1, 2]);
  const all = await fetch(`${base}/ready`);
  expect(all.status).toBe(503);
  expect(((await all.json()) as { reason: string }).reason).toBe('model load failed');
  expect((await fetch(`${base}/ready?model=slow`)).status).toBe(200);
  const broken = await fetch(`${base}/ready?model=broken`);
  expect(broken.status).toBe(503);
  expect(((await broken.json()) as { model: { error: { code: string } } }).model.error.code).toBe('CHECKPOINT_INVALID');
});
