// Optional API keys: without a key /graphql (HTTP, SSE, graphql-ws) answers UNAUTHENTICATED; each
// key has its own rate limit (RATE_LIMITED); a result is visible only to the key that created it
// (FORBIDDEN for others) and to admin keys, which alone may read /metrics.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, test } from 'vitest';
import WebSocket from 'ws';
import type { LensModel } from '../../src/lens/types.js';
import { ApiKeys } from '../../src/server/api-keys.js';
import { startGateway, wsClient, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

let model: LensModel;
let gw: Gateway;
let dir: string;
beforeAll(async () => {
  model = await openTinyGpt2();
  dir = mkdtempSync(join(tmpdir(), 'lensgate-keys-'));
  const file = join(dir, 'keys.json');
  writeFileSync(
    file,
    JSON.stringify({
      keys: [
        { name: 'alice', key: 'alice-secret', requestsPerMinute: 600 },
        // Stored as a digest: the file need not hold the key itself.
        { name: 'bob', sha256: createHash('sha256').update('bob-secret').digest('hex'), requestsPerMinute: 600 },
        { name: 'ops', key: 'ops-secret', admin: true, requestsPerMinute: 600 },
        { name: 'slow', key: 'slow-secret', requestsPerMinute: 3 },
      ],
    }),
  );
  gw = await startGateway([model], { apiKeys: ApiKeys.load(file) });
});
afterAll(async () => {
  await gw.stop();
  await model.close();
  rmSync(dir, { recursive: true, force: true });
});

type Body = { data?: Record<string, { id?: string } | null>; errors?: Array<{ extensions?: { code?: string } }> };
async function post(query: string, headers: Record<string, string> = {}, accept = 'application/json') {
  const res = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', accept, ...headers }, body: JSON.stringify({ query }) });
  const text = await res.text();
  return { status: res.status, text, body: (accept === 'application/json' ? JSON.parse(text) : {}) as Body };
}
const lens = '{ lens(input: {model: "gpt2-tiny", prompt: "The capital of France is"}) { id } }';

test('no key or an unknown key: 401 UNAUTHENTICATED on HTTP and SSE; /health stays open', async () => {
  for (const headers of [{}, { authorization: 'Bearer nope' }, { 'x-api-key': 'nope' }] as Array<Record<string, string>>) {
    const r = await post('{ models { id } }', headers);
    expect(r.status).toBe(401);
    expect(r.body.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  }
  const sse = await post('{ models { id } }', {}, 'text/event-stream');
  expect(sse.status).toBe(401);
  expect(sse.text).toMatch(/UNAUTHENTICATED/);
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

test('graphql-ws: a socket without a valid key is closed 4401; with one (connection_init apiKey) it works', async () => {
  const closeCode = await new Promise<number>((resolve) => {
    const ws = new WebSocket(gw.wsUrl, 'graphql-transport-ws');
    ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { apiKey: 'nope' } })));
    ws.once('close', (code) => resolve(code));
  });
  expect(closeCode).toBe(4401);
  const client = wsClient(gw.wsUrl, { connectionParams: { apiKey: 'alice-secret' } });
  try {
    const r = await new Promise<unknown>((resolve, reject) => {
      client.subscribe({ query: '{ models { id } }' }, { next: resolve, error: reject, complete: () => undefined });
    });
    expect(JSON.stringify(r)).toMatch(/gpt2-tiny/);
  } finally {
    await client.dispose();
  }
});
