// Subscription.lensLayers over graphql-ws and SSE against a live gateway with real checkpoints:
// event order, streaming before completion, cancellation on unsubscribe, and isolation of bad
// operations on a shared socket.

import { print, type FormattedExecutionResult } from 'graphql';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensLayersDocument, LensResultByIdDocument, type LensLayersSubscription } from '../../src/client/graphql.js';
import type { LensModel, LensResult } from '../../src/lens/types.js';
import { collect, http, instrument, sseClient, startGateway, wsClient, type Gateway, type Instrumented } from '../server/harness.js';
import { openDeepGpt2, openTinyGpt2 } from '../server/models.js';

type Event = LensLayersSubscription['lensLayers'];

let gw: Gateway;
let tiny: LensModel;
let deep: Instrumented;
let direct: LensResult;
const PROMPT = 'The quick brown fox jumps';

beforeAll(async () => {
  tiny = await openTinyGpt2();
  deep = instrument(await openDeepGpt2(), { layerDelayMs: 25 });
  direct = await tiny.lens(PROMPT, { trackAcrossLayers: true });
  gw = await startGateway([tiny, deep.model]);
});
afterAll(async () => {
  await gw.stop();
  await tiny.close();
  await deep.model.close();
});

function checkStream(events: Array<FormattedExecutionResult<LensLayersSubscription>>): void {
  for (const e of events) expect(e.errors).toBeUndefined();
  const ev = events.map((e) => e.data!.lensLayers);
  expect(ev.map((e) => e.__typename)).toEqual(['LensStarted', 'LayerResult', 'LayerResult', 'LayerResult', 'LensCompleted']);
  const started = ev[0] as Extract<Event, { __typename: 'LensStarted' }>;
  expect(started.layers).toEqual([0, 1, 2]);
  expect(started.tokens.map((t) => t.id)).toEqual(direct.tokens.map((t) => t.id));
  expect(started.points).toEqual(['BLOCK_OUTPUT']);
  ev.slice(1, 4).forEach((e, i) => {
    const layer = e as Extract<Event, { __typename: 'LayerResult' }>;
    expect(layer.resultId).toBe(started.resultId);
    expect([layer.layer, layer.index, layer.count, layer.point]).toEqual([i, i, 3, 'BLOCK_OUTPUT']);
    expect(layer.topIndices).toEqual(direct.topIndices[i]);
    expect(layer.topProbs).toEqual(direct.topProbs[i]);
    expect(layer.cells[0].token).toBe(tiny.decode(direct.topIndices[i][0][0]));
  });
  const done = ev[4] as Extract<Event, { __typename: 'LensCompleted' }>;
  expect(done.result.id).toBe(started.resultId);
  expect(done.result.topIndices).toEqual(direct.topIndices);
  expect(done.result.tracked!.map((t) => t.tokenIds)).toEqual(direct.tracked!.map((t) => t.tokenIds));
}

describe('event order and content', () => {
  const input = { model: 'gpt2-tiny', prompt: PROMPT, trackAcrossLayers: true };

  test('graphql-ws: LensStarted, one LayerResult per layer, LensCompleted; result stored under resultId', async () => {
    const client = wsClient(gw.wsUrl);
    const events = await collect(client, LensLayersDocument, { input });
    await client.dispose();
    checkStream(events);
    const id = (events[0].data!.lensLayers as Extract<Event, { __typename: 'LensStarted' }>).resultId;
    const stored = await http(gw.url, LensResultByIdDocument, { id });
    expect(stored.data!.lensResult!.topIndices).toEqual(direct.topIndices);
  });

  test('SSE (graphql-sse client): the same stream', async () => {
    const client = sseClient(gw.url);
    const events = await collect(client, LensLayersDocument, { input });
    client.dispose();
    checkStream(events);
  });

  test('errors before the stream are single error results with codes', async () => {
    const client = wsClient(gw.wsUrl);
    const bad = await collect(client, LensLayersDocument, { input: { model: 'nope', prompt: PROMPT } });
    expect(bad).toHaveLength(1);
    expect(bad[0].errors![0].extensions!.code).toBe('MODEL_NOT_FOUND');
    const badK = await collect(client, LensLayersDocument, { input: { model: 'gpt2-tiny', prompt: PROMPT, topK: -1 } });
    expect(badK[0].errors![0].extensions!.code).toBe('BAD_USER_INPUT');
    await client.dispose();
  });
});

describe('streaming and cancellation (24-layer model)', () => {
  const input = { model: 'gpt2-deep', prompt: PROMPT };

  test('LayerResults arrive while later layers are still being computed', async () => {
    const client = wsClient(gw.wsUrl);
    const before = deep.layersComputed;
    const computedAtArrival: number[] = [];
    const iter = client.iterate<LensLayersSubscription>({ query: print(LensLayersDocument), variables: { input } });
    for await (const e of iter) {
      if (e.data?.lensLayers.__typename === 'LayerResult') computedAtArrival.push(deep.layersComputed - before);
    }
    await client.dispose();
    expect(computedAtArrival).toHaveLength(24);
    // Buffered to the end, every arrival would see all 24 layers computed.
    expect(computedAtArrival[0]).toBeLessThan(12);
  });

  for (const transport of ['graphql-ws', 'SSE'] as const) {
    test(`${transport}: unsubscribing after the first layer stops the computation`, async () => {
      const client = transport === 'graphql-ws' ? wsClient(gw.wsUrl) : sseClient(gw.url);
      const before = deep.layersComputed;
      const iter = client.iterate<LensLayersSubscription>({ query: print(LensLayersDocument), variables: { input } });
      for await (const e of iter) {
        if (e.data?.lensLayers.__typename === 'LayerResult') break; // calls return(): unsubscribe
      }
      await new Promise((r) => setTimeout(r, 300));
      const afterCancel = deep.layersComputed - before;
      await new Promise((r) => setTimeout(r, 700));
      const later = deep.layersComputed - before;
      if (transport === 'graphql-ws') await (client as ReturnType<typeof wsClient>).dispose();
      else client.dispose();
      expect(afterCancel).toBeLessThan(24);
      expect(later).toBe(afterCancel);
    });
  }
});

test('a bad operation never kills the other subscriptions on its socket', async () => {
  const client = wsClient(gw.wsUrl);
  const good = collect(client, LensLayersDocument, { input: { model: 'gpt2-deep', prompt: PROMPT, layers: [0, 5, 23] } });
  const outcome = (query: string, variables?: Record<string, unknown>) =>
    (async () => {
      const results: unknown[] = [];
      for await (const r of client.iterate({ query, variables })) results.push(r);
      return results;
    })().catch((errs: unknown) => ({ thrown: errs }));
  const aliases = Array.from({ length: 12 }, (_, i) => `a${i}: resultId`).join(' ');
  const [syntax, unknownField, tooManyAliases, unknownModel] = await Promise.all([
    outcome('subscription { lensLayers('),
    outcome('subscription { nope }'),
    outcome(`subscription { lensLayers(input: {model: "gpt2-tiny", prompt: "x"}) { ... on LensStarted { ${aliases} } } }`),
    outcome(print(LensLayersDocument), { input: { model: 'nope', prompt: 'x' } }),
  ]);
  expect(JSON.stringify(syntax)).toContain('Syntax Error');
  expect(JSON.stringify(unknownField)).toContain('nope');
  expect(JSON.stringify(tooManyAliases)).toContain('Aliases limit');
  expect(JSON.stringify(unknownModel)).toContain('MODEL_NOT_FOUND');
  const events = await good;
  expect(events.map((e) => e.data?.lensLayers.__typename)).toEqual([
    'LensStarted',
    'LayerResult',
    'LayerResult',
    'LayerResult',
    'LensCompleted',
  ]);
  await client.dispose();
});
