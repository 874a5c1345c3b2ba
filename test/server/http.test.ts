// The HTTP surface around GraphQL: health and readiness, body limit, CORS, graphql-armor limits,
// error masking, GET queries and GraphiQL.

import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { LensDocument, LensLayersDocument, ModelsDocument } from '../../src/client/graphql.js';
import { openModel } from '../../src/lens/index.js';
import type { LensModel } from '../../src/lens/types.js';
import { buildApp } from '../../src/server/app.js';
import { ModelRegistry } from '../../src/server/models.js';
import { MemoryResultStore } from '../../src/server/result-store.js';
import { gatewayApi } from '../../resolvers/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { collect, http, startGateway, wsClient, type Gateway } from './harness.js';
import { openTinyGpt2 } from './models.js';

let gw: Gateway;
let model: LensModel;

beforeAll(async () => {
  model = await openTinyGpt2();
  gw = await startGateway([model], { cors: { origin: ['https://viewer.example'] } });
});
afterAll(async () => {
  await gw.stop();
  await model.close();
});

const origin = () => new URL(gw.url).origin;

test('/ready is 503 while models load and 200 after; /health is 200 throughout', async () => {
  const registry = new ModelRegistry();
  const app = buildApp({ registry, api: gatewayApi({ registry, store: new MemoryResultStore() }), port: 0, host: '127.0.0.1', logging: false });
  const { url } = await app.start();
  const base = new URL(url).origin;
  try {
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const before = await fetch(`${base}/ready`);
    expect(before.status).toBe(503);
    await registry.load([{ id: 'late', dir: makeCheckpoint(RECIPES['gpt2-tiny']) }], openModel, 'cpu');
    expect((await fetch(`${base}/ready`)).status).toBe(200);
    const r = await http(url, ModelsDocument);
    expect(r.data!.models.map((m) => m.id)).toEqual(['late']);
  } finally {
    await app.stop();
    await registry.close();
  }
});

describe('request body limit (64 KiB default)', () => {
  test('a large Content-Length is refused with 413 before reading', async () => {
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ models { id } }', variables: { pad: 'x'.repeat(70_000) } }),
    });
    expect(res.status).toBe(413);
  });

  test('a chunked body without Content-Length is cut off at the limit too', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.write('{"query":"{ models { id } }","variables":{"pad":"');
      for (let i = 0; i < 20; i++) req.write('y'.repeat(8192));
      req.end('"}}');
    });
    expect(status).toBe(413);
  });

  test('a normal request passes', async () => {
    const r = await http(gw.url, ModelsDocument);
    expect(r.status).toBe(200);
    expect(r.data!.models[0].id).toBe('gpt2-tiny');
  });
});

test('CORS: the configured origin is allowed, others are not', async () => {
  const preflight = (o: string) =>
    fetch(gw.url, {
      method: 'OPTIONS',
      headers: { origin: o, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
  const ok = await preflight('https://viewer.example');
  expect(ok.headers.get('access-control-allow-origin')).toBe('https://viewer.example');
  const other = await preflight('https://evil.example');
  expect(other.headers.get('access-control-allow-origin')).not.toBe('https://evil.example');
});

describe('graphql-armor limits', () => {
  const post = async (query: string) => {
    const res = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ query }),
    });
    return { status: res.status, body: (await res.json()) as { data?: unknown; errors?: Array<{ message: string }> } };
  };

  test('too many aliases', async () => {
    const r = await post(`{ ${Array.from({ length: 11 }, (_, i) => `m${i}: models { id }`).join(' ')} }`);
    expect(r.body.data).toBeUndefined();
    expect(r.body.errors![0].message).toMatch(/Aliases limit/);
  });

  test('too many tokens', async () => {
    const r = await post(`{ models { ${'id '.repeat(2100)} } }`);
    expect(r.body.errors![0].message).toMatch(/Token limit/);
  });

  test('too many directives', async () => {
    const r = await post(`{ models { id ${'@include(if: true) '.repeat(21)} } }`);
    expect(r.body.errors![0].message).toMatch(/Directives limit/);
  });

  test('field suggestions are not leaked', async () => {
    const r = await post('{ modls { id } }');
    expect(r.body.errors![0].message).not.toMatch(/Did you mean/);
  });
});

test('unexpected failures are masked as INTERNAL', async () => {
  // A real model whose sessions were released: the core fails in a way no client should see.
  const closed = await openTinyGpt2('closed');
  await closed.close();
  const other = await startGateway([closed]);
  try {
    const r = await http(other.url, LensDocument, { input: { model: 'closed', prompt: 'The quick brown fox' } });
    expect(r.errors![0].extensions!.code).toBe('INTERNAL');
    expect(r.errors![0].message).toMatch(/^(Internal server error|Unexpected error\.)$/);
    // Mid-stream, the failure is one error event after LensStarted; the socket stays usable.
    const ws = wsClient(other.wsUrl);
    const events = await collect(ws, LensLayersDocument, { input: { model: 'closed', prompt: 'The quick brown fox' } });
    expect(events.map((e) => e.data?.lensLayers.__typename ?? e.errors![0].extensions!.code)).toEqual(['LensStarted', 'INTERNAL']);
    const models = await collect(ws, LensLayersDocument, { input: { model: 'nope', prompt: 'x' } });
    expect(models[0].errors![0].extensions!.code).toBe('MODEL_NOT_FOUND');
    await ws.dispose();
  } finally {
    await other.stop();
  }
});

test('GET queries work and GraphiQL is served to browsers in development', async () => {
  const res = await fetch(`${gw.url}?query=${encodeURIComponent('{ models { id } }')}`, {
    headers: { accept: 'application/graphql-response+json' },
  });
  expect(await res.json()).toEqual({ data: { models: [{ id: 'gpt2-tiny' }] } });
  const page = await fetch(gw.url, { headers: { accept: 'text/html' } });
  expect(page.headers.get('content-type')).toMatch(/text\/html/);
  expect(origin()).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
});

test('JSON responses are gzipped when accepted; SSE streams too, by default (test/server/compression.test.ts)', async () => {
  const rawPost = (headers: Record<string, string>, body: unknown) =>
    new Promise<{ headers: Record<string, unknown>; bytes: number }>((resolve, reject) => {
      const req = request(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ headers: res.headers, bytes }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  const query = { query: 'query($p: String!) { lens(input: {model: "gpt2-tiny", prompt: $p, trackAcrossLayers: true}) { topIndices topProbs tracked { tokenIds probs } } }', variables: { p: 'The quick brown fox jumps over the lazy dog' } };
  const plain = await rawPost({}, query);
  const gz = await rawPost({ 'accept-encoding': 'gzip' }, query);
  expect(plain.headers['content-encoding']).toBeUndefined();
  expect(gz.headers['content-encoding']).toBe('gzip');
  expect(gz.bytes).toBeLessThan(plain.bytes);
  const sse = await rawPost(
    { 'accept-encoding': 'gzip', accept: 'text/event-stream' },
    { query: 'subscription { lensLayers(input: {model: "gpt2-tiny", prompt: "Hi"}) { __typename } }' },
  );
  expect(sse.headers['content-type']).toMatch(/text\/event-stream/);
  expect(sse.headers['content-encoding']).toBe('gzip');
});
