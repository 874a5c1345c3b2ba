// A mixed hostile workload for ~30 s on loopback, next to well-behaved clients: big `cells`
// requests, one address opening far more subscriptions than its cap (graphql-ws and SSE), bodies
// trickled slower than the body timeout, oversized WebSocket messages, foreign origins, a flood of
// small and malformed requests. The server must stay responsive (/health p99, probed from a worker
// thread), keep its result store within its byte budget and its heap bounded, and every
// well-behaved subscription must receive every layer.
//
// Hostile clients bind other loopback addresses (127.0.0.2–6) so the per-address caps single them
// out, as they would distinct hosts. Bounds are set for a CI machine shared with other jobs (see
// event-loop.test.ts).
import { connect } from 'node:net';
import { request } from 'node:http';
import { print } from 'graphql';
import { expect, test } from 'vitest';
import WebSocket from 'ws';
import { LensLayersDocument } from '../../src/client/graphql.js';
import { MemoryResultStore } from '../../src/server/result-store.js';
import { percentile, probeHealth } from '../helpers/health-probe.js';
import { startGateway, wsClient } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

const DURATION_MS = 30_000;
// /health p99, the target being 100 ms: measured on the 2-core development machine at load
// average ~10 (other helpers' suites running) p99 104 ms, max 770 ms; before ORT moved off the loop
// and the JSON was serialized in turns, p99 2.1 s at load ~25. The bound leaves room for a CI
// machine busier than that and still catches stalls of the old kind.
const P99_BOUND_MS = 250;
const STORE_BYTES = 8 * 2 ** 20;
const HEAP_BOUND_BYTES = 1.5 * 2 ** 30;
const ORIGIN = 'https://viewer.example';

function boundTo(localAddress: string) {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { localAddress, headers: { origin: ORIGIN } });
    }
  };
}

function post(url: string, body: string, opts: { localAddress?: string; headers?: Record<string, string> } = {}): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', localAddress: opts.localAddress, headers: { 'content-type': 'application/json', ...opts.headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(-1));
    });
    req.on('error', () => resolve(-1));
    req.end(body);
  });
}

test('30 s of hostile traffic: /health stays responsive, memory within budget, well-behaved clients get every layer', async () => {
  const model = await openTinyGpt2();
  const store = new MemoryResultStore({ maxBytes: STORE_BYTES });
  const gw = await startGateway([model], {
    store,
    cors: { origin: [ORIGIN] },
    bodyTimeoutMs: 1000,
    bodyLimitBytes: 16 * 1024,
    maxOperationsPerAddress: 8,
    scheduler: { maxQueue: 32 },
  });
  const deadline = Date.now() + DURATION_MS;
  const running = () => Date.now() < deadline;
  const layersSeen: number[][] = [];
  const stats = { big: 0, refusedSubs: 0, timeouts: 0, oversized: 0, badOrigin: 0, flood: 0 };
  let maxHeap = 0;
  let maxStore = 0;
  const sampler = setInterval(() => {
    maxHeap = Math.max(maxHeap, process.memoryUsage().heapUsed);
    maxStore = Math.max(maxStore, store.stats().bytes);
  }, 100);
  const probe = probeHealth(new URL('/health', gw.url).href, 20);
  try {
    const prompt = 'a' + ' a'.repeat(model.info.maxPositions - 1);
    const bigQuery = JSON.stringify({
      query: `query($p: String!) { lens(input: {model: "gpt2-tiny", prompt: $p, topK: 100, trackAcrossLayers: true}) { id cells { token topk { id text prob } } tracked { tokenIds probs } } }`,
      variables: { p: prompt },
    });
    const big = async () => {
      while (running()) if ((await post(gw.url, bigQuery, { localAddress: '127.0.0.2' })) === 200) stats.big++;
    };

    const subscription = { query: print(LensLayersDocument), variables: { input: { model: 'gpt2-tiny', prompt: 'The capital of France is' } } };
    // One address, four sockets × 6 operations plus SSE streams: far past its cap of 8.
    const greedy = async () => {
      while (running()) {
        const clients = Array.from({ length: 4 }, () => wsClient(gw.wsUrl, { webSocketImpl: boundTo('127.0.0.3') }));
        const outcomes = await Promise.all(
          clients.flatMap((c) =>
            Array.from({ length: 6 }, () =>
              new Promise<string>((resolve) => {
                c.subscribe(subscription, {
                  next: (r) => {
                    if (r.errors) resolve(String(r.errors[0].extensions?.code));
                  },
                  error: (e) => resolve(String((e as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code ?? 'error')),
                  complete: () => resolve('complete'),
                });
              }),
            ),
          ),
        );
        stats.refusedSubs += outcomes.filter((o) => o === 'TOO_MANY_SUBSCRIPTIONS').length;
        await Promise.all(clients.map((c) => c.dispose()));
      }
    };
    const greedySse = async () => {
      while (running()) {
        await post(gw.url, JSON.stringify(subscription), { localAddress: '127.0.0.3', headers: { accept: 'text/event-stream' } });
      }
    };

    const slowBody = async () => {
      while (running()) {
        await new Promise<void>((resolve) => {
          const socket = connect({ port: Number(new URL(gw.url).port), host: '127.0.0.1', localAddress: '127.0.0.4' });
          socket.on('error', () => undefined);
          socket.write('POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"query":');
          const trickle = setInterval(() => socket.write(' '), 200);
          socket.on('data', (d: Buffer) => {
            if (d.toString().includes('408')) stats.timeouts++;
          });
          socket.on('close', () => {
            clearInterval(trickle);
            resolve();
          });
        });
      }
    };

    const oversized = async () => {
      while (running()) {
        await new Promise<void>((resolve) => {
          const ws = new (boundTo('127.0.0.5'))(gw.wsUrl, 'graphql-transport-ws');
          ws.on('error', () => undefined);
          ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { pad: 'x'.repeat(64 * 1024) } })));
          ws.once('close', (code) => {
            if (code === 1009) stats.oversized++;
            resolve();
          });
        });
      }
    };

    const flood = async () => {
      const bodies = ['{ models { id } }', '{"query": "{ models { id } "', 'not json at all', '{"query": "{ nope }"}'];
      let i = 0;
      while (running()) {
        const evil = i % 5 === 0;
        const body = bodies[i++ % bodies.length];
        const status = await post(gw.url, body.startsWith('{ ') ? JSON.stringify({ query: body }) : body, {
          localAddress: '127.0.0.6',
          headers: evil ? { origin: 'https://evil.example' } : {},
        });
        if (evil && status === 403) stats.badOrigin++;
        else stats.flood++;
      }
    };

    // Well-behaved: two clients on 127.0.0.1 running one subscription after another.
    const wellBehaved = async () => {
      const client = wsClient(gw.wsUrl, { webSocketImpl: boundTo('127.0.0.1') });
      try {
        while (running()) {
          const layers: number[] = [];
          let completed = false;
          const errors: unknown[] = [];
          await new Promise<void>((resolve) => {
            client.subscribe<{ lensLayers: { __typename: string; layer?: number } }>(subscription, {
              next: (r) => {
                if (r.errors) errors.push(...r.errors);
                const ev = r.data?.lensLayers;
                if (ev?.__typename === 'LayerResult') layers.push(ev.layer!);
                if (ev?.__typename === 'LensCompleted') completed = true;
              },
              error: (e) => {
                errors.push(e);
                resolve();
              },
              complete: resolve,
            });
          });
          expect(errors).toEqual([]);
          expect(completed).toBe(true);
          layersSeen.push(layers);
        }
      } finally {
        await client.dispose();
      }
    };

    await Promise.all([big(), big(), greedy(), greedySse(), slowBody(), slowBody(), oversized(), flood(), flood(), wellBehaved(), wellBehaved()]);
  } finally {
    clearInterval(sampler);
  }
  const latencies = await probe.stop();
  await gw.stop();
  await model.close();

  const p99 = percentile(latencies, 99);
  console.log(
    `load: /health ${latencies.length} pings p50 ${percentile(latencies, 50).toFixed(1)} ms p99 ${p99.toFixed(1)} ms max ${Math.max(...latencies).toFixed(1)} ms; ` +
      `heap max ${(maxHeap / 2 ** 20).toFixed(0)} MiB, store max ${(maxStore / 2 ** 20).toFixed(1)} MiB; ${JSON.stringify(stats)}`,
  );
  // Every hostile behaviour was actually exercised and met its limit.
  expect(stats.big).toBeGreaterThan(0);
  expect(stats.refusedSubs).toBeGreaterThan(0);
  expect(stats.timeouts).toBeGreaterThan(0);
  expect(stats.oversized).toBeGreaterThan(0);
  expect(stats.badOrigin).toBeGreaterThan(0);
  expect(stats.flood).toBeGreaterThan(0);
  // Responsive, within memory budget, and every layer to the well-behaved clients.
  expect(latencies.filter((l) => !Number.isFinite(l))).toEqual([]);
  expect(p99).toBeLessThanOrEqual(P99_BOUND_MS);
  expect(maxStore).toBeLessThanOrEqual(STORE_BYTES);
  expect(maxHeap).toBeLessThanOrEqual(HEAP_BOUND_BYTES);
  expect(layersSeen.length).toBeGreaterThanOrEqual(2);
  for (const layers of layersSeen) expect(layers).toEqual([0, 1, 2]);
}, 180_000);

