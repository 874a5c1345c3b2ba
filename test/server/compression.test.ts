// Compression of streamed events must never hold an event back: SSE gzip is flushed after every
// event and graphql-ws uses permessage-deflate (one deflate + sync flush per message). Checked with
// a real 24-layer model whose layers are stretched: the first LayerResult must be readable while
// later layers are still being computed.

import { once } from 'node:events';
import { request } from 'node:http';
import { print } from 'graphql';
import { createGunzip, gunzipSync } from 'node:zlib';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensLayersDocument, type LensLayersSubscription } from '../../src/client/graphql.js';
import { measureStreams } from '../../bench/wire.js';
import { gzipStream } from '../../src/server/compression.js';
import { instrument, startGateway, wsClient, type Gateway, type Instrumented } from './harness.js';
import { openDeepGpt2 } from './models.js';

let deep: Instrumented;
let gw: Gateway;
let plain: Gateway;

beforeAll(async () => {
  deep = instrument(await openDeepGpt2(), { layerDelayMs: 25 });
  gw = await startGateway([deep.model]);
  plain = await startGateway([deep.model], { streamCompression: false });
});
afterAll(async () => {
  await gw.stop();
  await plain.stop();
  await deep.model.close();
});

const input = { model: 'gpt2-deep', prompt: 'The quick brown fox jumps' };

/** A web stream the test writes into, as yoga's SSE stream is written event by event. */
function pushStream() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    cancel: () => void (cancelled = true),
  });
  return { stream, push: (text: string) => controller.enqueue(new TextEncoder().encode(text)), end: () => controller.close(), cancelled: () => cancelled };
}

test('gzipStream: each event is decodable before the next one is written; the whole is one gzip stream', async () => {
  const src = pushStream();
  const gz = gzipStream(src.stream);
  const gunzip = createGunzip();
  const decoded: string[] = [];
  gunzip.on('data', (d: Buffer) => decoded.push(d.toString()));
  const all: Buffer[] = [];
  gz.on('data', (c: Buffer) => {
    all.push(c);
    gunzip.write(c);
  });
  const events = ['event: next\ndata: {"a":1}\n\n', 'event: next\ndata: {"a":2}\n\n'];
  for (const event of events) {
    // yoga writes an event as two chunks; both go out in the same flush.
    const [head, data] = event.split(/(?<=\n)(?=data)/);
    src.push(head);
    src.push(data);
    for (let tries = 0; !decoded.join('').includes(event) && tries < 50; tries++) await new Promise((r) => setTimeout(r, 10));
    expect(decoded.join('')).toContain(event);
  }
  src.end();
  await once(gz, 'end');
  expect(gunzipSync(Buffer.concat(all)).toString()).toBe(events.join(''));
});

test('gzipStream: one event far larger than zlib\'s buffer (an 80-layer LensCompleted) goes through', async () => {
  const src = pushStream();
  const gz = gzipStream(src.stream);
  const big = `event: next\ndata: ${JSON.stringify(Array.from({ length: 100_000 }, (_, i) => Math.sin(i)))}\n\n`;
  const out: Buffer[] = [];
  gz.on('data', (c: Buffer) => out.push(c));
  src.push(big);
  src.push('event: complete\n\n');
  src.end();
  await once(gz, 'end');
  const text = gunzipSync(Buffer.concat(out)).toString();
  expect(text.length).toBe(big.length + 'event: complete\n\n'.length);
  expect(text.endsWith('event: complete\n\n')).toBe(true);
}, 20_000);

test('gzipStream: destroying it (the client left) cancels the source stream', async () => {
  const src = pushStream();
  const gz = gzipStream(src.stream);
  gz.resume();
  src.push('event: next\ndata: {}\n\n');
  await new Promise((r) => setTimeout(r, 20));
  gz.destroy();
  await new Promise((r) => setTimeout(r, 20));
  expect(src.cancelled()).toBe(true);
});

test('SSE with accept-encoding gzip: gzip on the wire, and the first LayerResult decodes while later layers still run', async () => {
  const before = deep.layersComputed;
  const computedAtFirst = await new Promise<number>((resolve, reject) => {
    const req = request(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'accept-encoding': 'gzip' } }, (res) => {
      expect(res.headers['content-encoding']).toBe('gzip');
      let text = '';
      let first = -1;
      res.pipe(createGunzip()).on('data', (d: Buffer) => {
        text += d.toString();
        if (first < 0 && text.includes('"LayerResult"')) first = deep.layersComputed - before;
      }).on('end', () => {
        expect(text).toContain('"LensCompleted"');
        resolve(first);
      }).on('error', reject);
    });
    req.on('error', reject);
    req.end(JSON.stringify({ query: print(LensLayersDocument), variables: { input } }));
  });
  expect(computedAtFirst).toBeGreaterThan(0);
  // Buffered to the end, the first LayerResult would only be seen after all 24 layers.
  expect(computedAtFirst).toBeLessThan(12);
});

/** Opens a gzip SSE stream; resolves at its first LayerResult with a way to leave (destroy the connection). */
function gzipStreamUntilFirstLayer(url: string): Promise<{ leave: () => void }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', 'accept-encoding': 'gzip' } }, (res) => {
      let text = '';
      let first = true;
      res.pipe(createGunzip()).on('data', (d: Buffer) => {
        text += d.toString();
        if (first && text.includes('"LayerResult"')) {
          first = false;
          resolve({ leave: () => req.destroy() });
        }
      }).on('error', () => undefined);
    });
    req.on('error', () => undefined);
    req.on('close', () => reject(new Error('closed before the first LayerResult')));
    req.end(JSON.stringify({ query: print(LensLayersDocument), variables: { input } }));
  });
}

test('SSE gzip: a client that leaves mid-run stops its run at once; the next stream is not held behind it', async () => {
  // Before: the gzip body was a web stream nobody cancelled on disconnect, so the run went on to its
  // last layer and the next request waited for it (15–18 s on the 80-layer bench shape).
  const scheduler = gw.registry.get('gpt2-deep')!.scheduler;
  const first = await gzipStreamUntilFirstLayer(gw.url);
  const atLeave = deep.layersComputed;
  first.leave();
  const second = await gzipStreamUntilFirstLayer(gw.url);
  const before2nd = deep.layersComputed - atLeave;
  second.leave();
  for (let i = 0; i < 200 && scheduler.getStats().running + scheduler.getStats().queued > 0; i++) await new Promise((r) => setTimeout(r, 25));
  expect(scheduler.getStats()).toMatchObject({ running: 0, queued: 0 });
  // 24 layers per run: the first run computed a few more layers at most, not the rest of its 24,
  // before the second run's first layer (which itself takes one or two).
  expect(before2nd).toBeLessThan(10);
}, 30_000);

test('the wire bench counts the bytes of every stream it measures, ws included (its counter read 0)', async () => {
  // A short stream on the same gateway (compression on): deflate and gzip must be measured, and smaller.
  const rows = await measureStreams(gw.url, { ...input, layers: [0, 6, 12, 18, 23], trackAcrossLayers: true }, 1);
  const bytes = Object.fromEntries(rows.map((r) => [r.label, r.bytes]));
  for (const [label, n] of Object.entries(bytes)) expect(n, label).toBeGreaterThan(1000);
  expect(bytes['graphql-ws, JSON events, permessage-deflate']).toBeLessThan(bytes['graphql-ws, JSON events, no deflate']);
  expect(bytes['SSE, JSON events, gzip, flushed per event']).toBeLessThan(bytes['SSE, JSON events, identity']);
}, 60_000);

describe('graphql-ws permessage-deflate', () => {
  test('negotiated when offered; LayerResults still stream while later layers run', async () => {
    let extensions = '';
    class Probe extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        this.on('open', () => (extensions = this.extensions));
      }
    }
    const client = wsClient(gw.wsUrl, { webSocketImpl: Probe });
    const before = deep.layersComputed;
    const arrivals: number[] = [];
    for await (const e of client.iterate<LensLayersSubscription>({ query: print(LensLayersDocument), variables: { input } })) {
      if (e.data?.lensLayers.__typename === 'LayerResult') arrivals.push(deep.layersComputed - before);
    }
    await client.dispose();
    expect(extensions).toContain('permessage-deflate');
    expect(arrivals).toHaveLength(24);
    expect(arrivals[0]).toBeLessThan(12);
  });

  test('not negotiated with streamCompression: false (npm start -- --no-compress-streams)', async () => {
    let extensions: string | null = null;
    class Probe extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        this.on('open', () => (extensions = this.extensions));
      }
    }
    const client = wsClient(plain.wsUrl, { webSocketImpl: Probe });
    const events: unknown[] = [];
    for await (const e of client.iterate({ query: print(LensLayersDocument), variables: { input: { ...input, layers: [0] } } })) events.push(e);
    await client.dispose();
    expect(events).toHaveLength(3);
    expect(extensions).toBe('');
  });
});
