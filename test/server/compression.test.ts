// Compression of streamed events must never hold an event back: SSE gzip is flushed after every
// event and graphql-ws uses permessage-deflate (one deflate + sync flush per message). Checked with
// a real 24-layer model whose layers are stretched: the first LayerResult must be readable while
// later layers are still being computed.

import { request } from 'node:http';
import { print } from 'graphql';
import { createGunzip, gunzipSync } from 'node:zlib';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensLayersDocument, type LensLayersSubscription } from '../../src/client/graphql.js';
import { flushingGzip } from '../../src/server/compression.js';
import { instrument, startGateway, wsClient, type Gateway, type Instrumented } from './harness.js';
import { openDeepGpt2 } from './models.js';

let deep: Instrumented;
let gw: Gateway;
let plain: Gateway;

beforeAll(async () => {
  deep = instrument(await openDeepGpt2(), { layerDelayMs: 25 });
  gw = await startGateway([deep.model], { streamCompression: true });
  plain = await startGateway([deep.model]);
});
afterAll(async () => {
  await gw.stop();
  await plain.stop();
  await deep.model.close();
});

const input = { model: 'gpt2-deep', prompt: 'The quick brown fox jumps' };

test('flushingGzip: each chunk is decodable before the next one is written; the whole is one gzip stream', async () => {
  const gz = flushingGzip();
  const writer = gz.writable.getWriter();
  const reader = gz.readable.getReader();
  const gunzip = createGunzip();
  const decoded: string[] = [];
  gunzip.on('data', (d: Buffer) => decoded.push(d.toString()));
  const all: Uint8Array[] = [];
  const events = ['event: next\ndata: {"a":1}\n\n', 'event: next\ndata: {"a":2}\n\n'];
  for (const event of events) {
    void writer.write(new TextEncoder().encode(event));
    for (let tries = 0; !decoded.join('').includes(event) && tries < 10; tries++) {
      const { value } = await reader.read();
      all.push(value!);
      await new Promise<void>((resolve) => gunzip.write(value!, () => resolve()));
      await new Promise((r) => setImmediate(r));
    }
    expect(decoded.join('')).toContain(event);
  }
  void writer.close();
  for (let r = await reader.read(); !r.done; r = await reader.read()) all.push(r.value);
  expect(gunzipSync(Buffer.concat(all)).toString()).toBe(events.join(''));
});

test('flushingGzip: one event far larger than zlib\'s buffer (an 80-layer LensCompleted) goes through', async () => {
  // Before: output was read only after the flush, and zlib stopped at its 16 KiB buffer: a deadlock.
  const gz = flushingGzip();
  const big = new TextEncoder().encode(`event: next\ndata: ${JSON.stringify(Array.from({ length: 100_000 }, (_, i) => Math.sin(i)))}\n\n`);
  const writer = gz.writable.getWriter();
  const collected = (async () => {
    const out: Uint8Array[] = [];
    for await (const c of gz.readable) out.push(c);
    return out;
  })();
  await writer.write(big);
  await writer.write(new TextEncoder().encode('event: complete\n\n'));
  await writer.close();
  const text = gunzipSync(Buffer.concat(await collected)).toString();
  expect(text.length).toBe(big.length + 'event: complete\n\n'.length);
  expect(text.endsWith('event: complete\n\n')).toBe(true);
}, 20_000);

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

  test('not negotiated by default (streamCompression off)', async () => {
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
