// A cached answer to Subscription.lensLayers sends what a live run sent: for a generating request,
// the prompt positions' LayerResults, then one PositionResult per written token and read point, then
// LensCompleted — for every lens kind, over SSE and graphql-ws. Only `cached` may differ.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensLayersDocument, type LensLayersSubscription } from '../../src/client/graphql.js';
import { openModel } from '../../src/lens/index.js';
import type { LensModel } from '../../src/lens/types.js';
import { LENS_FILES_D16, LENSED_D16, makeCheckpoint } from '../helpers/fixtures.js';
import { collect, instrument, sseClient, startGateway, wsClient, type Gateway, type Instrumented } from '../server/harness.js';

type Event = LensLayersSubscription['lensLayers'];
let gw: Gateway;
let model: LensModel;
let probe: Instrumented;

beforeAll(async () => {
  model = await openModel(makeCheckpoint(LENSED_D16), { id: 'd16', device: 'cpu', lenses: LENS_FILES_D16 });
  probe = instrument(model);
  gw = await startGateway([probe.model], { limits: { maxNewTokens: 8 } });
  gw.registry.setContentHash('d16', 'test-hash-d16-replay');
});
afterAll(async () => {
  await gw?.stop();
  await model?.close();
});

function events(results: Awaited<ReturnType<typeof collect<LensLayersSubscription, unknown>>>): Event[] {
  return results.map((r) => {
    expect(r.errors).toBeUndefined();
    return r.data!.lensLayers;
  });
}

const uncached = (ev: Event[]) => ev.map((e) => (e.__typename === 'LensCompleted' ? { ...e, result: { ...e.result, cached: null } } : e));

describe('a cached generating subscription replays the live event sequence', () => {
  for (const lens of ['LOGIT', 'TUNED', 'JACOBIAN'] as const) {
    test(`${lens}, both read points: live (SSE) = cached over SSE = cached over graphql-ws`, async () => {
      const input = {
        model: 'd16',
        prompt: `Hello world, ${lens.toLowerCase()}`,
        lens,
        topK: 3,
        points: ['BLOCK_OUTPUT' as const, 'ATTENTION_OUTPUT' as const],
        generate: { maxNewTokens: 3 },
      };
      const live = events(await collect(sseClient(gw.url), LensLayersDocument, { input }));
      const runs = probe.batchSizes.length;
      const sse = events(await collect(sseClient(gw.url), LensLayersDocument, { input }));
      const ws = wsClient(gw.wsUrl);
      const overWs = events(await collect(ws, LensLayersDocument, { input }));
      await ws.dispose();
      expect(probe.batchSizes.length).toBe(runs);

      const started = live[0] as Extract<Event, { __typename: 'LensStarted' }>;
      const layers = started.layers.length;
      const promptLen = started.tokens.length;
      const done = live.at(-1) as Extract<Event, { __typename: 'LensCompleted' }>;
      const written = done.result.generation!.newTokens;
      expect(written).toBeGreaterThan(0);
      // Live shape: per layer, attention output then block output over the prompt positions; then
      // per written token, block output then attention output.
      expect(live.map((e) => e.__typename)).toEqual([
        'LensStarted',
        ...Array(2 * layers).fill('LayerResult'),
        ...Array(2 * written).fill('PositionResult'),
        'LensCompleted',
      ]);
      for (const e of live) if (e.__typename === 'LayerResult') expect(e.topIndices).toHaveLength(promptLen);
      expect(live.filter((e) => e.__typename === 'PositionResult').map((e) => [e.position, e.point])).toEqual(
        Array.from({ length: written }, (_, i) => [
          [promptLen + i, 'BLOCK_OUTPUT'],
          [promptLen + i, 'ATTENTION_OUTPUT'],
        ]).flat(),
      );
      expect([done.result.cached, (sse.at(-1) as typeof done).result.cached, (overWs.at(-1) as typeof done).result.cached]).toEqual([false, true, true]);
      expect(uncached(sse)).toEqual(uncached(live));
      expect(uncached(overWs)).toEqual(uncached(live));
    });
  }
});
