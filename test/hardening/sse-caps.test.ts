// Streamed HTTP operations (SSE) are capped per client address like graphql-ws operations, and
// both transports share one per-address budget: opening SSE streams next to sockets gets a client
// no further than TOO_MANY_SUBSCRIPTIONS.
import { print } from 'graphql';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import { LensLayersDocument } from '../../src/client/graphql.js';
import type { LensModel } from '../../src/lens/types.js';
import { instrument, sseClient, startGateway, wsClient } from '../server/harness.js';
import { openDeepGpt2 } from '../server/models.js';

let model: LensModel;
beforeAll(async () => {
  model = instrument(await openDeepGpt2(), { layerDelayMs: 30 }).model;
});
afterAll(() => model.close());

const subscription = { query: print(LensLayersDocument), variables: { input: { model: 'gpt2-deep', prompt: 'The quick brown fox' } } };

/** Opens one SSE subscription and resolves with its first event's outcome ('ok' or the error code); abort() ends it. */
async function sseFirst(url: string): Promise<{ outcome: string; abort: () => void }> {
  const ac = new AbortController();
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify(subscription),
    signal: ac.signal,
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
    const m = /event: next\ndata: (.*)\n/.exec(text);
    if (m) {
      const ev = JSON.parse(m[1]) as { data?: unknown; errors?: Array<{ extensions?: { code?: string } }> };
      return { outcome: ev.data ? 'ok' : String(ev.errors?.[0]?.extensions?.code), abort: () => ac.abort() };
    }
  }
  return { outcome: 'ended', abort: () => ac.abort() };
}

test('one client address cannot hold more SSE streams than its cap; a finished one frees its slot', async () => {
  const gw = await startGateway([model], { maxOperationsPerAddress: 3, scheduler: { maxQueue: 64 } });
  try {
    const first = await Promise.all(Array.from({ length: 3 }, () => sseFirst(gw.url)));
    expect(first.map((s) => s.outcome)).toEqual(['ok', 'ok', 'ok']);
    const more = await Promise.all(Array.from({ length: 2 }, () => sseFirst(gw.url)));
    expect(more.map((s) => s.outcome)).toEqual(['TOO_MANY_SUBSCRIPTIONS', 'TOO_MANY_SUBSCRIPTIONS']);
    // The graphql-sse client reads the coded error too.
    const client = sseClient(gw.url);
    const viaClient = await new Promise<string>((resolve) => {
      client.subscribe(subscription, {
        next: (r) => resolve(r.data ? 'ok' : String(r.errors?.[0]?.extensions?.code)),
        error: (e) => resolve(`error: ${String(e)}`),
        complete: () => resolve('complete'),
      });
    });
    expect(viaClient).toBe('TOO_MANY_SUBSCRIPTIONS');
    client.dispose();
    first[0].abort();
    let again: Awaited<ReturnType<typeof sseFirst>> | undefined;
    await vi.waitFor(
      async () => {
        again?.abort();
        again = await sseFirst(gw.url);
        expect(again.outcome).toBe('ok');
      },
      { timeout: 20_000, interval: 50 },
    );
    for (const s of [...first, ...more, again!]) s.abort();
  } finally {
    await gw.stop();
  }
});

test('SSE streams and graphql-ws operations of one address share its cap', async () => {
  const gw = await startGateway([model], { maxOperationsPerAddress: 3, scheduler: { maxQueue: 64 } });
  const ws = wsClient(gw.wsUrl);
  try {
    const stops: Array<() => void> = [];
    const wsOutcome = () =>
      new Promise<string>((resolve) => {
        stops.push(
          ws.subscribe(subscription, {
            next: (r) => resolve(r.data ? 'ok' : String(r.errors?.[0]?.extensions?.code)),
            error: (e) => resolve(String((e as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code ?? e)),
            complete: () => resolve('complete'),
          }),
        );
      });
    expect(await Promise.all([wsOutcome(), wsOutcome()])).toEqual(['ok', 'ok']);
    const sse = [await sseFirst(gw.url), await sseFirst(gw.url)];
    expect(sse.map((s) => s.outcome)).toEqual(['ok', 'TOO_MANY_SUBSCRIPTIONS']);
    // Full: the next WebSocket operation is refused as well.
    expect(await wsOutcome()).toBe('TOO_MANY_SUBSCRIPTIONS');
    stops.forEach((stop) => stop());
    sse.forEach((s) => s.abort());
  } finally {
    await ws.dispose();
    await gw.stop();
  }
});
