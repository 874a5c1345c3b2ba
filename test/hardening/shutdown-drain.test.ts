// stop() drains: it stops accepting (new requests, also on kept-alive connections, get 503
// UNAVAILABLE; new sockets 503), cancels the work, and waits until every in-flight HTTP request,
// SSE stream and graphql-ws operation has been answered, with CANCELLED where its work was cut,
// before graphql-ws sockets close with 1001 and connections close. No client sees a reset.
import { Agent, request } from 'node:http';
import { print } from 'graphql';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensDocument, LensLayersDocument } from '../../src/client/graphql.js';
import type { LensModel } from '../../src/lens/types.js';
import { instrument, startGateway, wsClient } from '../server/harness.js';
import { openDeepGpt2 } from '../server/models.js';

let model: LensModel;
let probe: ReturnType<typeof instrument>;
beforeAll(async () => {
  probe = instrument(await openDeepGpt2(), { layerDelayMs: 30 });
  model = probe.model;
});
afterAll(() => model.close());

const input = { model: 'gpt2-deep', prompt: 'The quick brown fox' };

/** POST over a kept-alive connection of `agent`; resolves with status and body, rejects on a reset. */
function post(url: string, agent: Agent, body: unknown, accept = 'application/json'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', accept } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function untilLayers(n: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (probe.layersComputed < n) {
    if (Date.now() > deadline) throw new Error('no lens work started within 20 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('in-flight HTTP requests (running and queued) and SSE streams are answered with CANCELLED; new connections are refused', async () => {
  const gw = await startGateway([model], { scheduler: { maxQueue: 64, maxBatchSize: 1 } });
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const lens = { query: print(LensDocument), variables: { input } };
  const start = probe.layersComputed;
  const inflight = [
    post(gw.url, agent, lens),
    post(gw.url, agent, lens),
    post(gw.url, agent, lens),
    post(gw.url, agent, { query: print(LensLayersDocument), variables: { input } }, 'text/event-stream'),
  ];
  await untilLayers(start + 2);
  const stopped = gw.stop();
  // Not accepting: a new connection after stop() began is refused (the listener is closed).
  const fresh = new Agent({ keepAlive: false });
  await expect(post(gw.url, fresh, lens)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

  const answers = await Promise.all(inflight);
  for (const a of answers.slice(0, 3)) {
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body).errors[0].extensions.code).toBe('CANCELLED');
  }
  const sse = answers[3];
  expect(sse.status).toBe(200);
  expect(sse.body).toMatch(/"code":"CANCELLED"/);
  expect(sse.body).toMatch(/event: complete/);
  await stopped;
  agent.destroy();
});

test('graphql-ws clients receive CANCELLED for each running operation before the 1001 close', async () => {
  const gw = await startGateway([model], { scheduler: { maxQueue: 64 } });
  const events: string[] = [];
  let closeCode = 0;
  const closed = new Promise<void>((resolve) => {
    // lazyCloseTimeout: the client keeps its socket once both operations ended with CANCELLED, so
    // the close seen is the server's 1001, not the lazy client's own 1000 racing it.
    const client = wsClient(gw.wsUrl, {
      lazyCloseTimeout: 30_000,
      on: {
        closed: (e) => {
          closeCode = (e as CloseEvent).code;
          events.push(`closed ${closeCode}`);
          resolve();
        },
      },
    });
    for (let i = 0; i < 2; i++) {
      client.subscribe(
        { query: print(LensLayersDocument), variables: { input } },
        {
          next: (r) => {
            const code = r.errors?.[0]?.extensions?.code;
            if (code) events.push(`op${i} ${String(code)}`);
          },
          error: (e) => events.push(`op${i} error ${String((e as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code ?? e)}`),
          complete: () => events.push(`op${i} complete`),
        },
      );
    }
  });
  await untilLayers(probe.layersComputed + 2);
  await gw.stop();
  await closed;
  expect(closeCode).toBe(1001);
  const closeAt = events.indexOf('closed 1001');
  for (const op of ['op0', 'op1']) {
    const cancelled = events.findIndex((e) => e.startsWith(op) && e.includes('CANCELLED'));
    expect(cancelled, `${op}: ${events.join(', ')}`).toBeGreaterThanOrEqual(0);
    expect(cancelled).toBeLessThan(closeAt);
  }
});

test('stop() refuses new WebSocket upgrades while it drains', async () => {
  const gw = await startGateway([model], { scheduler: { maxQueue: 64 } });
  const client = wsClient(gw.wsUrl);
  const running = new Promise<void>((resolve) => {
    client.subscribe({ query: print(LensLayersDocument), variables: { input } }, { next: () => resolve(), error: () => resolve(), complete: () => resolve() });
  });
  await running;
  const stopped = gw.stop();
  const { default: WebSocket } = await import('ws');
  const late = await new Promise<string>((resolve) => {
    const ws = new WebSocket(gw.wsUrl, 'graphql-transport-ws');
    ws.once('open', () => resolve('open'));
    ws.once('unexpected-response', (_req, res) => resolve(`HTTP ${res.statusCode}`));
    ws.once('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
  });
  // Refused: 503 while the listener drains, or no listener at all once it has closed.
  expect(late).toMatch(/^(HTTP 503|error ECONNREFUSED)$/);
  await stopped;
  await client.dispose();
});
