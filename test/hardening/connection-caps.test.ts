// Open connections are capped: one client address holds at most N graphql-ws sockets and SSE
// streams together, the whole server at most M, and a refused upgrade gets a coded JSON refusal.
import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
import { afterAll, beforeAll, expect, test, vi } from 'vitest';
import WebSocket from 'ws';
import type { LensModel } from '../../src/lens/types.js';
import { startGateway, type Gateway } from '../server/harness.js';
import { openDeepGpt2 } from '../server/models.js';

let model: LensModel;
beforeAll(async () => {
  model = await openDeepGpt2();
});
afterAll(() => model.close());

interface Opened {
  ws: WebSocket;
  /** The upgrade's response headers. */
  headers: IncomingMessage['headers'];
}

interface Refused {
  status: number;
  code: string;
}

/** Opens a graphql-ws socket from `localAddress` (any 127.x.y.z is loopback on Linux); resolves once open or refused. */
function connect(url: string, localAddress = '127.0.0.1', perMessageDeflate = false): Promise<Opened | Refused> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'graphql-transport-ws', { localAddress, perMessageDeflate });
    let headers: IncomingMessage['headers'] = {};
    ws.once('upgrade', (res) => (headers = res.headers));
    ws.once('open', () => resolve({ ws, headers }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        const code = (JSON.parse(body) as { errors: Array<{ extensions: { code: string } }> }).errors[0].extensions.code;
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
    ws.once('error', reject);
  });
}

function opened(r: Opened | Refused): Opened {
  if (!('ws' in r)) throw new Error(`refused: ${r.status} ${r.code}`);
  return r;
}

async function closeAll(sockets: Opened[]): Promise<void> {
  await Promise.all(sockets.map((s) => new Promise<void>((resolve) => {
    if (s.ws.readyState === WebSocket.CLOSED) return resolve();
    s.ws.once('close', () => resolve());
    s.ws.close();
  })));
}

test('one client address cannot hold more sockets than its cap; another address still connects, and a closed socket frees its slot', async () => {
  const gw = await startGateway([model], { maxConnectionsPerAddress: 3 });
  try {
    const mine = await Promise.all([1, 2, 3].map(() => connect(gw.wsUrl).then(opened)));
    // Sockets without an operation count: they hold memory as long as they stay open.
    expect(await connect(gw.wsUrl)).toEqual({ status: 429, code: 'TOO_MANY_CONNECTIONS' });
    const other = opened(await connect(gw.wsUrl, '127.0.0.2'));
    await closeAll([mine[0]]);
    let again: Opened | Refused | undefined;
    // The server counts a closed socket out after the client's close has run.
    await vi.waitFor(
      async () => {
        again = await connect(gw.wsUrl);
        expect(again).toHaveProperty('ws');
      },
      { timeout: 10_000, interval: 20 },
    );
    await closeAll([...mine.slice(1), other, opened(again!)]);
  } finally {
    await gw.stop();
  }
});

test('the server holds at most its total of sockets, whichever addresses they come from', async () => {
  const gw = await startGateway([model], { maxConnectionsPerAddress: 2, maxConnections: 3 });
  try {
    const held = [opened(await connect(gw.wsUrl, '127.0.0.1')), opened(await connect(gw.wsUrl, '127.0.0.2')), opened(await connect(gw.wsUrl, '127.0.0.3'))];
    expect(await connect(gw.wsUrl, '127.0.0.4')).toEqual({ status: 503, code: 'TOO_MANY_CONNECTIONS' });
    await closeAll(held);
  } finally {
    await gw.stop();
  }
});

/** Starts an SSE request from `localAddress`; resolves with the first event's error code, or 'open' once a `next` with data arrives. */
function sse(url: string, localAddress: string): Promise<{ outcome: string; abort: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', localAddress, headers: { 'content-type': 'application/json', accept: 'text/event-stream' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => {
        text += d.toString();
        const m = /event: next\ndata: (.*)\n/.exec(text);
        if (!m) return;
        const ev = JSON.parse(m[1]) as { data?: unknown; errors?: Array<{ extensions?: { code?: string } }> };
        resolve({ outcome: ev.data ? 'open' : String(ev.errors?.[0]?.extensions?.code), abort: () => req.destroy() });
      });
    });
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
    // A status subscription of a ready model ends at once; a lens stream stays open while it runs.
    req.end(JSON.stringify({ query: 'subscription($i: LensInput!) { lensLayers(input: $i) { __typename } }', variables: { i: { model: 'gpt2-deep', prompt: 'The quick brown fox jumps over the lazy dog' } } }));
  });
}

test('SSE streams count toward the same connection cap as sockets', async () => {
  const gw = await startGateway([model], { maxConnectionsPerAddress: 2, scheduler: { maxQueue: 64 } });
  try {
    const socket = opened(await connect(gw.wsUrl, '127.0.0.5'));
    const stream = await sse(gw.url, '127.0.0.5');
    expect(stream.outcome).toBe('open');
    const refused = await sse(gw.url, '127.0.0.5');
    expect(refused.outcome).toBe('TOO_MANY_CONNECTIONS');
    expect(await connect(gw.wsUrl, '127.0.0.5')).toEqual({ status: 429, code: 'TOO_MANY_CONNECTIONS' });
    stream.abort();
    refused.abort();
    await closeAll([socket]);
  } finally {
    await gw.stop();
  }
});
