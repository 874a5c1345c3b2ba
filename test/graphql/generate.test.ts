// LensInput.generate through the gateway: Query.lens returns prompt + generated tokens, and the
// subscription streams one PositionResult per generated position after the prompt's layers.
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensDocument, LensLayersDocument, type LensLayersSubscription } from '../../src/client/graphql.js';
import type { LensModel, LensResult } from '../../src/lens/types.js';
import { collect, http, startGateway, type Gateway, wsClient } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

type Event = LensLayersSubscription['lensLayers'];
const PROMPT = 'The quick brown fox';
let gw: Gateway;
let model: LensModel;
let direct: LensResult;

beforeAll(async () => {
  model = await openTinyGpt2();
  direct = await model.lens(PROMPT, { generate: { maxNewTokens: 3 } });
  gw = await startGateway([model], { limits: { maxNewTokens: 8 } });
});
afterAll(async () => {
  await gw.stop();
  await model.close();
});

describe('LensInput.generate', () => {
  const input = { model: 'gpt2-tiny', prompt: PROMPT, generate: { maxNewTokens: 3 } };

  test('Query.lens: tokens end with the generated ones, each with its column', async () => {
    const r = await http(gw.url, LensDocument, { input });
    expect(r.errors).toBeUndefined();
    const res = r.data!.lens;
    expect(res.tokens).toEqual(direct.tokens.map((t) => ({ ...t, generated: t.generated ?? false })));
    expect(res.tokens.filter((t) => t.generated)).toHaveLength(3);
    expect(res.topIndices).toEqual(direct.topIndices);
    expect(res.generation).toEqual({ maxNewTokens: 3, newTokens: 3, stoppedAtEos: false, eosTokenIds: [50256] });
  });

  test('subscription: LensStarted, the prompt layers, one PositionResult per generated position, LensCompleted', async () => {
    const client = wsClient(gw.wsUrl);
    const events = await collect(client, LensLayersDocument, { input });
    await client.dispose();
    for (const e of events) expect(e.errors).toBeUndefined();
    const ev = events.map((e) => e.data!.lensLayers);
    expect(ev.map((e) => e.__typename)).toEqual([
      'LensStarted',
      'LayerResult',
      'LayerResult',
      'LayerResult',
      'PositionResult',
      'PositionResult',
      'PositionResult',
      'LensCompleted',
    ]);
    const started = ev[0] as Extract<Event, { __typename: 'LensStarted' }>;
    expect(started.maxNewTokens).toBe(3);
    const promptLen = started.tokens.length;
    ev.slice(4, 7).forEach((e, i) => {
      const pos = e as Extract<Event, { __typename: 'PositionResult' }>;
      const p = promptLen + i;
      expect(pos.position).toBe(p);
      expect(pos.token).toEqual({ ...direct.tokens[p], generated: true });
      expect(pos.topIndices).toEqual(direct.topIndices.map((layer) => layer[p]));
      expect(pos.cells.map((c) => [c.layer, c.position, c.token])).toEqual(
        direct.layers.map((l, li) => [l, p, model.decode(direct.topIndices[li][p][0])]),
      );
    });
    const done = ev[7] as Extract<Event, { __typename: 'LensCompleted' }>;
    expect(done.result.topIndices).toEqual(direct.topIndices);
  });

  test('beyond the server limit, or past the model positions: coded errors', async () => {
    const over = await http(gw.url, LensDocument, { input: { ...input, generate: { maxNewTokens: 9 } } });
    expect(over.errors![0].extensions!.code).toBe('BAD_USER_INPUT');
    expect(over.errors![0].message).toMatch(/server limit/);
    const zero = await http(gw.url, LensDocument, { input: { ...input, generate: { maxNewTokens: 0 } } });
    expect(zero.errors![0].extensions!.code).toBe('BAD_USER_INPUT');
  });
});
