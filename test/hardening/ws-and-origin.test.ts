// graphql-ws: messages bounded like HTTP bodies, concurrent operations capped per socket and per
// client address; CORS without credentials; an Origin allow-list applied to WebSocket upgrades and
// SSE as well as to CORS.
import { print } from 'graphql';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import WebSocket from 'ws';
import { LensLayersDocument } from '../../src/client/graphql.js';
import type { LensModel } from '../../src/lens/types.js';
import { instrument, startGateway, wsClient, type Gateway } from '../server/harness.js';
import { openDeepGpt2 } from '../server/models.js';

let model: LensModel;
beforeAll(async () => {
  model = instrument(await openDeepGpt2(), { layerDelayMs: 30 }).model;
});
afterAll(() => model.close());

function rawSocket(url: string, headers: Record<string, string> = {}) {
  const ws = new WebSocket(url, 'graphql-transport-ws', { headers });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
  return { ws, opened, closed };
}

test('a WebSocket message larger than the HTTP body limit closes the socket with 1009, and is not logged as an internal error', async () => {
  const gw = await startGateway([model], { bodyLimitBytes: 16 * 1024 });
  // graphql-ws logs socket errors with console.error; a client's oversized message is not one.
  const logged: string[] = [];
  const spy = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void logged.push(args.map(String).join(' ')));
  try {
    const s = rawSocket(gw.wsUrl);
    await s.opened;
    s.ws.send(JSON.stringify({ type: 'connection_init', payload: { pad: 'x'.repeat(20 * 1024) } }));
    const still = new Promise<string>((r) => setTimeout(() => r('still open after 5 s'), 5000).unref());
    expect(await Promise.race([s.closed, still])).toBe(1009);
    s.ws.terminate();
    // The gateway still serves a new socket after it.
    const client = wsClient(gw.wsUrl);
    const r = await new Promise<unknown>((resolve, reject) => client.subscribe({ query: '{ models { id } }' }, { next: resolve, error: reject, complete: () => undefined }));
    await client.dispose();
    expect(JSON.stringify(r)).toMatch(/gpt2-deep/);
    expect(logged.filter((l) => /internal error|max payload/i.test(l))).toEqual([]);
  } finally {
    spy.mockRestore();
    await gw.stop();
  }
});

async function outcomes(gw: Gateway, sockets: number, perSocket: number) {
  const clients = Array.from({ length: sockets }, () => wsClient(gw.wsUrl));
  // Admitted operations keep running until every outcome is known, so they all overlap.
  const stops: Array<() => void> = [];
  const codes = await Promise.all(
    clients.flatMap((c) =>
      Array.from({ length: perSocket }, () =>
        new Promise<string>((resolve) => {
          stops.push(c.subscribe(
            { query: print(LensLayersDocument), variables: { input: { model: 'gpt2-deep', prompt: 'The quick brown fox' } } },
            {
              next: (r) => {
                if (r.data) resolve('ok');
                else resolve(String(r.errors?.[0]?.extensions?.code));
              },
              error: (e) => resolve(String((e as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code ?? e)),
              complete: () => resolve('complete'),
            },
          ));
        }),
      ),
    ),
  );
  stops.forEach((stop) => stop());
  await Promise.all(clients.map((c) => c.dispose()));
  return codes;
}

test('one socket cannot run more than its cap of operations', async () => {
  const gw = await startGateway([model], { maxOperationsPerSocket: 2, scheduler: { maxQueue: 64 } });
  try {
    const codes = await outcomes(gw, 1, 5);
    expect(codes.filter((c) => c === 'ok')).toHaveLength(2);
    expect(codes.filter((c) => c === 'TOO_MANY_SUBSCRIPTIONS')).toHaveLength(3);
  } finally {
    await gw.stop();
  }
});

test('one client address cannot run more than its cap, however many sockets it opens', async () => {
  const gw = await startGateway([model], { maxOperationsPerSocket: 2, maxOperationsPerAddress: 3, scheduler: { maxQueue: 64 } });
  try {
    const codes = await outcomes(gw, 3, 2);
    expect(codes.filter((c) => c === 'ok')).toHaveLength(3);
    expect(codes.filter((c) => c === 'TOO_MANY_SUBSCRIPTIONS')).toHaveLength(3);
  } finally {
    await gw.stop();
  }
});

test('default CORS allows any origin but never with credentials', async () => {
  const gw = await startGateway([model]);
  try {
    const res = await fetch(gw.url, {
      method: 'OPTIONS',
      headers: { origin: 'https://any.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(res.headers.get('access-control-allow-origin')).toBeTruthy();
    expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    const get = await fetch(`${gw.url}?query=${encodeURIComponent('{ models { id } }')}`, { headers: { origin: 'https://any.example', accept: 'application/json' } });
    expect(get.headers.get('access-control-allow-credentials')).toBeNull();
  } finally {
    await gw.stop();
  }
});

test('with an allow-list, other origins are refused on WebSocket upgrades and SSE; allowed ones and non-browser clients pass', async () => {
  const gw = await startGateway([model], { cors: { origin: ['https://viewer.example'] } });
  try {
    await expect(rawSocket(gw.wsUrl, { origin: 'https://evil.example' }).opened).rejects.toThrow(/403/);
    const good = rawSocket(gw.wsUrl, { origin: 'https://viewer.example' });
    await good.opened;
    good.ws.close();
    const plain = rawSocket(gw.wsUrl);
    await plain.opened;
    plain.ws.close();
    const sse = (origin: string) =>
      fetch(gw.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', origin },
        body: JSON.stringify({ query: '{ models { id } }' }),
      });
    const evil = await sse('https://evil.example');
    expect(evil.status).toBe(403);
    expect(((await evil.json()) as { errors: Array<{ extensions: { code: string } }> }).errors[0].extensions.code).toBe('FORBIDDEN_ORIGIN');
    const ok = await sse('https://viewer.example');
    expect(ok.status).toBe(200);
    expect(await ok.text()).toMatch(/gpt2-deep/);
  } finally {
    await gw.stop();
  }
});
