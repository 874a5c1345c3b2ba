// Optional API keys: without a key /graphql (HTTP, SSE, graphql-ws) answers UNAUTHENTICATED; each
// key has its own rate limit (RATE_LIMITED); a result is visible only to the key that created it
// (FORBIDDEN for others) and to admin keys, which alone may read /metrics.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import WebSocket from 'ws';
import { createClient as createSseClient, NetworkError } from 'graphql-sse';
import type { LensModel } from '../../src/lens/types.js';
import { ApiKeys } from '../../src/server/api-keys.js';
import { writeApiKeys, type ApiKeysFile } from '../helpers/api-keys.js';
import { startGateway, wsClient, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

let model: LensModel;
let gw: Gateway;
let keys: ApiKeysFile;
beforeAll(async () => {
  model = await openTinyGpt2();
  keys = writeApiKeys([
    { name: 'alice' },
    // Stored as a digest: the file need not hold the key itself.
    { name: 'bob', sha256: createHash('sha256').update('bob-secret').digest('hex') },
    { name: 'ops', admin: true },
    { name: 'slow', requestsPerMinute: 3 },
  ]);
  gw = await startGateway([model], { apiKeys: ApiKeys.load(keys.file) });
});
afterAll(async () => {
  await gw.stop();
  await model.close();
  keys.remove();
});

type Body = { data?: Record<string, { id?: string } | null>; errors?: Array<{ extensions?: { code?: string } }> };
async function post(query: string, headers: Record<string, string> = {}, accept = 'application/json') {
  const res = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', accept, ...headers }, body: JSON.stringify({ query }) });
  const text = await res.text();
  return { status: res.status, text, body: (accept === 'application/json' ? JSON.parse(text) : {}) as Body };
}
const lens = '{ lens(input: {model: "gpt2-tiny", prompt: "The capital of France is"}) { id } }';

test('no key or an unknown key: 401 UNAUTHENTICATED on HTTP (on SSE the one event of the stream); /health stays open', async () => {
  for (const headers of [{}, { authorization: 'Bearer nope' }, { 'x-api-key': 'nope' }] as Array<Record<string, string>>) {
    const r = await post('{ models { id } }', headers);
    expect(r.status).toBe(401);
    expect(r.body.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  }
  const sse = await post('{ models { id } }', {}, 'text/event-stream');
  expect(sse.status).toBe(200);
  expect(sse.text).toMatch(/^event: next\ndata: .*UNAUTHENTICATED/);
  expect((await fetch(new URL('/health', gw.url))).status).toBe(200);
  expect((await post('{ models { id } }', { authorization: 'Bearer alice-secret' })).body.data?.models).toBeTruthy();
  expect((await post('{ models { id } }', { 'x-api-key': 'bob-secret' })).body.data?.models).toBeTruthy();
});

test('results belong to the key that created them: FORBIDDEN for other keys, readable by admin keys', async () => {
  const made = await post(lens, { authorization: 'Bearer alice-secret' });
  const id = made.body.data!.lens!.id!;
  const read = (key: string) => post(`{ lensResult(id: "${id}") { id prompt { text } } }`, { authorization: `Bearer ${key}` });
  expect((await read('alice-secret')).body.data?.lensResult?.id).toBe(id);
  const bob = await read('bob-secret');
  expect(bob.body.errors?.[0].extensions?.code).toBe('FORBIDDEN');
  expect(bob.text).not.toMatch(/capital of France/);
  expect((await read('ops-secret')).body.data?.lensResult?.id).toBe(id);
  // The identical request by another key is not answered with alice's stored result.
  const again = await post(lens, { authorization: 'Bearer bob-secret' });
  expect(again.body.data?.lens?.id).not.toBe(id);
});

test('/metrics needs an admin key', async () => {
  expect((await fetch(new URL('/metrics', gw.url))).status).toBe(401);
  const user = await fetch(new URL('/metrics', gw.url), { headers: { authorization: 'Bearer alice-secret' } });
  expect(user.status).toBe(403);
  expect(((await user.json()) as Body).errors?.[0].extensions?.code).toBe('FORBIDDEN');
  const admin = await fetch(new URL('/metrics', gw.url), { headers: { authorization: 'Bearer ops-secret' } });
  expect(admin.status).toBe(200);
  expect(await admin.text()).toMatch(/lensgate_/);
});

test('each key has its own rate limit: RATE_LIMITED with Retry-After, other keys unaffected', async () => {
  const codes: number[] = [];
  let retryAfter: string | null = null;
  for (let i = 0; i < 5; i++) {
    const res = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': 'slow-secret' }, body: JSON.stringify({ query: '{ models { id } }' }) });
    codes.push(res.status);
    if (res.status === 429) {
      retryAfter = res.headers.get('retry-after');
      expect(((await res.json()) as Body).errors?.[0].extensions?.code).toBe('RATE_LIMITED');
    } else await res.text();
  }
  expect(codes.slice(0, 3)).toEqual([200, 200, 200]);
  expect(codes.slice(3)).toEqual([429, 429]);
  expect(Number(retryAfter)).toBeGreaterThan(0);
  expect((await post('{ models { id } }', { 'x-api-key': 'alice-secret' })).status).toBe(200);
});

test('graphql-ws: without a valid key each operation gets a coded UNAUTHENTICATED error (the socket stays up); with one (connection_init apiKey) it works', async () => {
  // graphql-ws's own client: the operation fails with the GraphQL errors, not a close event.
  for (const connectionParams of [{}, { apiKey: 'nope' }]) {
    const bad = wsClient(gw.wsUrl, { connectionParams });
    try {
      const err = await new Promise<unknown>((resolve, reject) => {
        bad.subscribe({ query: '{ models { id } }' }, { next: () => reject(new Error('got data without a key')), error: resolve, complete: () => reject(new Error('completed without a key')) });
      });
      expect(Array.isArray(err)).toBe(true);
      expect((err as Array<{ extensions?: { code?: string } }>)[0].extensions?.code).toBe('UNAUTHENTICATED');
    } finally {
      await bad.dispose();
    }
  }
  const client = wsClient(gw.wsUrl, { connectionParams: { apiKey: 'alice-secret' } });
  try {
    const r = await new Promise<unknown>((resolve, reject) => {
      client.subscribe({ query: '{ models { id } }' }, { next: resolve, error: reject, complete: () => undefined });
    });
    expect(JSON.stringify(r)).toMatch(/gpt2-tiny/);
  } finally {
    await client.dispose();
  }
  // The key may also come as a header on the upgrade request.
  const viaHeader = wsClient(gw.wsUrl, {
    webSocketImpl: class extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { headers: { 'x-api-key': 'bob-secret' } });
      }
    },
  });
  try {
    const r = await new Promise<unknown>((resolve, reject) => viaHeader.subscribe({ query: '{ models { id } }' }, { next: resolve, error: reject, complete: () => undefined }));
    expect(JSON.stringify(r)).toMatch(/gpt2-tiny/);
  } finally {
    await viaHeader.dispose();
  }
});

test('graphql-sse: no key or a bad key is a coded UNAUTHENTICATED error from its own client, not a NetworkError', async () => {
  for (const headers of [{}, { authorization: 'Bearer nope' }] as Array<Record<string, string>>) {
    const client = createSseClient({ url: gw.url, retryAttempts: 0, headers });
    try {
      const err = await new Promise<unknown>((resolve, reject) => {
        client.subscribe({ query: 'subscription { modelStatus { id } }' }, { next: resolve, error: reject, complete: () => reject(new Error('completed')) });
      }).catch((e: unknown) => e);
      expect(err).not.toBeInstanceOf(NetworkError);
      expect((err as { errors?: Array<{ extensions?: { code?: string } }> }).errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
    } finally {
      client.dispose();
    }
  }
  const ok = createSseClient({ url: gw.url, retryAttempts: 0, headers: { authorization: 'Bearer alice-secret' } });
  try {
    const events: unknown[] = [];
    for await (const e of ok.iterate({ query: '{ models { id } }' })) events.push(e);
    expect(JSON.stringify(events)).toMatch(/gpt2-tiny/);
  } finally {
    ok.dispose();
  }
});

test('every HTTP transport answers a missing key with the coded error in its own format (GET, POST, multipart, SSE)', async () => {
  const q = encodeURIComponent('{ models { id } }');
  const get = await fetch(`${gw.url}?query=${q}`, { headers: { accept: 'application/graphql-response+json' } });
  expect(get.status).toBe(401);
  expect(get.headers.get('www-authenticate')).toBe('Bearer');
  expect(((await get.json()) as Body).errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  const multipart = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'multipart/mixed' }, body: JSON.stringify({ query: '{ models { id } }' }) });
  expect(multipart.status).toBe(401);
  expect(multipart.headers.get('content-type')).toMatch(/^multipart\/mixed/);
  const part = (await multipart.text()).split('\r\n\r\n')[1].split('\r\n')[0];
  expect((JSON.parse(part) as Body).errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  const sse = await fetch(`${gw.url}?query=${q}`, { headers: { accept: 'text/event-stream' } });
  expect(sse.status).toBe(200);
  const text = await sse.text();
  expect(text).toMatch(/^event: next\ndata: .*"UNAUTHENTICATED".*\n\nevent: complete\n/s);
  // A rate-limited SSE request says when to retry, in the error and in the header.
  const slow: Response[] = [];
  for (let i = 0; i < 4; i++) slow.push(await fetch(`${gw.url}?query=${q}`, { headers: { accept: 'text/event-stream', 'x-api-key': 'slow-secret' } }));
  const limited = slow.at(-1)!;
  expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  const limitedText = await limited.text();
  const event = JSON.parse(limitedText.split('\n')[1].slice('data: '.length)) as { errors: Array<{ extensions: { code: string; retryAfter: number } }> };
  expect(event.errors[0].extensions.code).toBe('RATE_LIMITED');
  expect(event.errors[0].extensions.retryAfter).toBeGreaterThan(0);
  for (const r of slow.slice(0, -1)) await r.text();
});
