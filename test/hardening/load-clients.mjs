// The clients of load.test.ts, run on a worker thread (test/helpers/client-thread.ts) so that the
// server's event loop, whose /health latency the test asserts, carries only the server's work. Plain
// JS: a worker thread under vitest has no TypeScript loader. workerData: { url, wsUrl, durationMs,
// origin, bigQuery, subscription }; posts { result: { stats, runs } } once every client has stopped.
import { connect } from 'node:net';
import { request } from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const { url, wsUrl, durationMs, origin, bigQuery, subscription } = workerData;
const deadline = Date.now() + durationMs;
const running = () => Date.now() < deadline;
const stats = { big: 0, refusedSubs: 0, timeouts: 0, oversized: 0, badOrigin: 0, flood: 0 };
/** One entry per well-behaved subscription: layers received, whether it completed, errors. */
const runs = [];

function boundTo(localAddress) {
  return class extends WebSocket {
    constructor(u, protocols) {
      super(u, protocols, { localAddress, headers: { origin } });
    }
  };
}

const wsClient = (localAddress) => createClient({ url: wsUrl, webSocketImpl: boundTo(localAddress), retryAttempts: 0, lazy: true });

function post(body, opts = {}) {
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

const codeOf = (e) => String((Array.isArray(e) ? e[0]?.extensions?.code : undefined) ?? 'error');

async function big() {
  while (running()) if ((await post(bigQuery, { localAddress: '127.0.0.2' })) === 200) stats.big++;
}

// One address, four sockets × 6 operations plus SSE streams: far past its cap of 8.
async function greedy() {
  while (running()) {
    const clients = Array.from({ length: 4 }, () => wsClient('127.0.0.3'));
    const outcomes = await Promise.all(
      clients.flatMap((c) =>
        Array.from(
          { length: 6 },
          () =>
            new Promise((resolve) => {
              c.subscribe(subscription, {
                next: (r) => {
                  if (r.errors) resolve(String(r.errors[0].extensions?.code));
                },
                error: (e) => resolve(codeOf(e)),
                complete: () => resolve('complete'),
              });
            }),
        ),
      ),
    );
    stats.refusedSubs += outcomes.filter((o) => o === 'TOO_MANY_SUBSCRIPTIONS').length;
    await Promise.all(clients.map((c) => c.dispose()));
  }
}

async function greedySse() {
  while (running()) await post(JSON.stringify(subscription), { localAddress: '127.0.0.3', headers: { accept: 'text/event-stream' } });
}

async function slowBody() {
  while (running()) {
    await new Promise((resolve) => {
      const socket = connect({ port: Number(new URL(url).port), host: '127.0.0.1', localAddress: '127.0.0.4' });
      socket.on('error', () => undefined);
      socket.write('POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"query":');
      const trickle = setInterval(() => socket.write(' '), 200);
      socket.on('data', (d) => {
        if (d.toString().includes('408')) stats.timeouts++;
      });
      socket.on('close', () => {
        clearInterval(trickle);
        resolve();
      });
    });
  }
}

async function oversized() {
  while (running()) {
    await new Promise((resolve) => {
      const ws = new (boundTo('127.0.0.5'))(wsUrl, 'graphql-transport-ws');
      ws.on('error', () => undefined);
      ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { pad: 'x'.repeat(64 * 1024) } })));
      ws.once('close', (code) => {
        if (code === 1009) stats.oversized++;
        resolve();
      });
    });
  }
}

async function flood() {
  const bodies = ['{ models { id } }', '{"query": "{ models { id } "', 'not json at all', '{"query": "{ nope }"}'];
  let i = 0;
  while (running()) {
    const evil = i % 5 === 0;
    const body = bodies[i++ % bodies.length];
    const status = await post(body.startsWith('{ ') ? JSON.stringify({ query: body }) : body, {
      localAddress: '127.0.0.6',
      headers: evil ? { origin: 'https://evil.example' } : {},
    });
    if (evil && status === 403) stats.badOrigin++;
    else stats.flood++;
  }
}

// Well-behaved: a client on 127.0.0.1 running one subscription after another.
async function wellBehaved() {
  const client = wsClient('127.0.0.1');
  try {
    while (running()) {
      const run = { layers: [], completed: false, errors: [] };
      await new Promise((resolve) => {
        client.subscribe(subscription, {
          next: (r) => {
            if (r.errors) run.errors.push(...r.errors);
            const ev = r.data?.lensLayers;
            if (ev?.__typename === 'LayerResult') run.layers.push(ev.layer);
            if (ev?.__typename === 'LensCompleted') run.completed = true;
          },
          error: (e) => {
            run.errors.push(Array.isArray(e) ? e : String(e?.message ?? e));
            resolve();
          },
          complete: resolve,
        });
      });
      runs.push(run);
    }
  } finally {
    await client.dispose();
  }
}

Promise.all([big(), big(), greedy(), greedySse(), slowBody(), slowBody(), oversized(), flood(), flood(), wellBehaved(), wellBehaved()]).then(
  () => parentPort.postMessage({ result: { stats, runs } }),
  (e) => parentPort.postMessage({ error: String(e?.stack ?? e) }),
);
