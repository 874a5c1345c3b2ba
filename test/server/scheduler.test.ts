// The per-model scheduler on a real tiny checkpoint: concurrent requests fold into one lensBatch
// call and come back exactly as when run alone; a full queue refuses at once; cancellation.

import { print } from 'graphql';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensDocument } from '../../src/client/graphql.js';
import { LensError, type LensModel, type LensResult } from '../../src/lens/types.js';
import { ModelScheduler } from '../../src/server/scheduler.js';
import { http, instrument, startGateway } from './harness.js';
import { openDeepGpt2, openTinyGpt2 } from './models.js';

const PROMPTS = ['The quick brown fox jumps over the lazy dog', 'Hello', 'Paris is the capital of', 'a b'];

let tiny: LensModel;
let deep: LensModel;
let alone: LensResult[];

/**
 * Batched and solo runs must agree: ids exactly, probabilities to float32 rounding (a padded batch
 * changes MatMul shapes, so ORT may pick other kernels and sum in another order).
 */
function expectSameResult(got: Pick<LensResult, 'topIndices' | 'topProbs' | 'tracked' | 'stats'>, want: LensResult): void {
  expect(got.topIndices).toEqual(want.topIndices);
  expect(got.tracked?.map((t) => t.tokenIds)).toEqual(want.tracked?.map((t) => t.tokenIds));
  expect(got.stats?.finalTop1Rank).toEqual(want.stats?.finalTop1Rank);
  const close = (a: unknown, b: unknown): void => {
    if (Array.isArray(a) && Array.isArray(b)) {
      expect(a.length).toBe(b.length);
      a.forEach((x, i) => close(x, b[i]));
    } else {
      expect(Math.abs((a as number) - (b as number))).toBeLessThanOrEqual(1e-6 + 1e-5 * Math.abs(b as number));
    }
  };
  close(got.topProbs, want.topProbs);
  close(got.tracked?.map((t) => t.probs) ?? [], want.tracked?.map((t) => t.probs) ?? []);
  close(got.stats?.entropy ?? [], want.stats?.entropy ?? []);
  close(got.stats?.klToFinal ?? [], want.stats?.klToFinal ?? []);
}

beforeAll(async () => {
  tiny = await openTinyGpt2();
  deep = await openDeepGpt2();
  alone = [];
  for (const p of PROMPTS) alone.push(await tiny.lens(p, { trackAcrossLayers: true, stats: true, topK: 4 }));
});
afterAll(async () => {
  await tiny.close();
  await deep.close();
});

describe('batching', () => {
  test('prompts of different lengths sent together run as one batch and equal unbatched results', async () => {
    const probe = instrument(tiny);
    const s = new ModelScheduler(probe.model, { batchWindowMs: 5, maxBatchSize: 8 });
    const results = await Promise.all(PROMPTS.map((p) => s.run(p, { trackAcrossLayers: true, stats: true, topK: 4 })));
    expect(probe.batchSizes).toEqual([4]);
    results.forEach((r, i) => {
      expectSameResult(r, alone[i]);
      expect(r.tokens).toEqual(alone[i].tokens);
      expect(r.timings.batchSize).toBe(4);
    });
  });

  test('requests arriving while a batch runs join the next batch instead of queueing one by one', async () => {
    const probe = instrument(deep, { layerDelayMs: 25 });
    const s = new ModelScheduler(probe.model, { batchWindowMs: 1, maxBatchSize: 8 });
    // Queued from inside the first batch's first layer, so they surely arrive while it computes.
    let later!: Promise<LensResult[]>;
    const first = s.run('first request', {
      onLayer: (e) => {
        if (e.index === 0) later = Promise.all(['b', 'c c', 'd d d'].map((p) => s.run(p)));
      },
    });
    await first;
    const rest = await later;
    expect(probe.batchSizes).toEqual([1, 3]);
    expect(rest.map((r) => r.timings.batchSize)).toEqual([3, 3, 3]);
  });

  test('over HTTP, concurrent Query.lens calls are batched and each equals its solo result', async () => {
    const probe = instrument(tiny);
    const gw = await startGateway([probe.model], { scheduler: { batchWindowMs: 20 } });
    try {
      const rs = await Promise.all(
        PROMPTS.map((prompt) =>
          http(gw.url, LensDocument, { input: { model: 'gpt2-tiny', prompt, topK: 4, trackAcrossLayers: true, stats: true } }),
        ),
      );
      expect(Math.max(...probe.batchSizes)).toBeGreaterThan(1);
      rs.forEach((r, i) => {
        expect(r.errors).toBeUndefined();
        expectSameResult(r.data!.lens as unknown as LensResult, alone[i]);
      });
    } finally {
      await gw.stop();
    }
  });
});

/** Resolves once the scheduler holds no job (the model has returned from its last batch). */
async function untilIdle(s: { getStats(): { queued: number; running: number } }): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (s.getStats().queued + s.getStats().running > 0) {
    if (Date.now() > deadline) throw new Error('the scheduler is still busy after 30 s');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('admission and cancellation', () => {
  test('a full queue answers OVERLOADED immediately', async () => {
    const s = new ModelScheduler(deep, { maxQueue: 2, batchWindowMs: 1 });
    const a = s.run('one');
    const b = s.run('two');
    // "Immediately" without a wall-clock bound (a loaded machine stretches any): the refusal is
    // settled within one microtask turn, while both admitted jobs are still unfinished.
    let settled = false;
    let doneA = false;
    void a.then(() => (doneA = true));
    const three = s.run('three');
    three.catch(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(true);
    expect(doneA).toBe(false);
    await expect(three).rejects.toMatchObject({ code: 'OVERLOADED' });
    await Promise.all([a, b]);
    await expect(s.run('four')).resolves.toBeDefined(); // slots free again
  });

  test('OVERLOADED reaches HTTP clients as extensions.code', async () => {
    const gw = await startGateway([deep], { scheduler: { maxQueue: 1 } });
    try {
      const rs = await Promise.all(
        [1, 2, 3].map(() => http(gw.url, LensDocument, { input: { model: 'gpt2-deep', prompt: 'The quick brown fox' } })),
      );
      const codes = rs.map((r) => r.errors?.[0].extensions?.code ?? 'ok');
      expect(codes.filter((c) => c === 'ok')).toHaveLength(1);
      expect(codes.filter((c) => c === 'OVERLOADED')).toHaveLength(2);
    } finally {
      await gw.stop();
    }
  });

  test('a request cancelled while queued never reaches the model and rejects with CANCELLED', async () => {
    const probe = instrument(deep, { layerDelayMs: 25 });
    const s = new ModelScheduler(probe.model, { batchWindowMs: 1 });
    const running = s.run('keeps the model busy');
    await new Promise((r) => setTimeout(r, 30));
    const ac = new AbortController();
    const queued = s.run('cancel me', { signal: ac.signal });
    ac.abort();
    await expect(queued).rejects.toBeInstanceOf(LensError);
    await expect(queued).rejects.toMatchObject({ code: 'CANCELLED' });
    await running;
    await untilIdle(s);
    expect(probe.batchSizes).toEqual([1]);
    expect(s.getStats()).toMatchObject({ queued: 0, running: 0 });
  });

  test('an HTTP client that disconnects cancels its Query.lens', async () => {
    const probe = instrument(deep, { layerDelayMs: 25 });
    const gw = await startGateway([probe.model]);
    try {
      const ac = new AbortController();
      const req = fetch(gw.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: print(LensDocument), variables: { input: { model: 'gpt2-deep', prompt: 'The quick brown fox' } } }),
        signal: ac.signal,
      }).catch(() => 'aborted');
      while (probe.layersComputed === 0) await new Promise((r) => setTimeout(r, 5));
      ac.abort();
      expect(await req).toBe('aborted');
      // Wait for the model to let go of the job (however long a loaded machine takes), then check
      // that it stopped early and that nothing runs after that.
      await untilIdle(gw.registry.get('gpt2-deep')!.scheduler);
      const at = probe.layersComputed;
      await new Promise((r) => setTimeout(r, 300));
      expect(probe.layersComputed).toBe(at);
      expect(at).toBeLessThan(24);
    } finally {
      await gw.stop();
    }
  });

  test('close() cancels running work between layers', async () => {
    const probe = instrument(deep, { layerDelayMs: 25 });
    const s = new ModelScheduler(probe.model, { batchWindowMs: 1 });
    const job = s.run('about to be shut down', {
      onLayer: (e) => {
        if (e.index === 0) s.close();
      },
    });
    await expect(job).rejects.toMatchObject({ code: 'CANCELLED' });
    // close() ran inside layer 0's callback: the model stops before layer 1 starts, however slowly
    // the machine runs (no wall-clock window).
    await untilIdle(s);
    const at = probe.layersComputed;
    await new Promise((r) => setTimeout(r, 300));
    expect(probe.layersComputed).toBe(at);
    expect(at).toBe(1);
    await expect(s.run('after close')).rejects.toMatchObject({ code: 'CANCELLED' });
  });
});
