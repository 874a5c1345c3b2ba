// Every error a client can receive carries extensions.code: armor's rejections, parse and
// validation errors, variable coercion, malformed requests — over HTTP, graphql-ws and SSE.
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { LensModel } from '../../src/lens/types.js';
import { startGateway, wsClient, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

let gw: Gateway;
let model: LensModel;
beforeAll(async () => {
  model = await openTinyGpt2();
  gw = await startGateway([model]);
});
afterAll(async () => {
  await gw.stop();
  await model.close();
});

interface Err {
  message: string;
  extensions?: { code?: string };
}

async function post(body: unknown, accept = 'application/graphql-response+json') {
  const res = await fetch(gw.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, errors: ((await res.json()) as { errors?: Err[] }).errors ?? [] };
}

const LENS_TOPK = 'query($k: Int) { lens(input: {model: "gpt2-tiny", prompt: "a", topK: $k}) { id } }';

const cases: Array<[string, unknown, string]> = [
  ['aliases', { query: `{ ${Array.from({ length: 11 }, (_, i) => `m${i}: models { id }`).join(' ')} }` }, 'ALIAS_LIMIT_EXCEEDED'],
  ['tokens', { query: `{ models { ${'id '.repeat(2100)} } }` }, 'TOKEN_LIMIT_EXCEEDED'],
  ['directives', { query: `{ models { id ${'@include(if: true) '.repeat(21)} } }` }, 'DIRECTIVE_LIMIT_EXCEEDED'],
  ['syntax', { query: '{ models { id ' }, 'GRAPHQL_PARSE_FAILED'],
  ['unknown field', { query: '{ modls { id } }' }, 'GRAPHQL_VALIDATION_FAILED'],
  ['variable coercion (topK 2.5)', { query: LENS_TOPK, variables: { k: 2.5 } }, 'BAD_USER_INPUT'],
  ['variable of the wrong type', { query: LENS_TOPK, variables: { k: 'five' } }, 'BAD_USER_INPUT'],
  ['missing query', { variables: {} }, 'BAD_REQUEST'],
  ['malformed JSON', '{"query": "{ models { id } }"', 'BAD_REQUEST'],
  ['unknown operation name', { query: '{ models { id } }', operationName: 'Nope' }, 'OPERATION_RESOLUTION_FAILURE'],
];

test.each(cases.filter(([, , code]) => code !== 'OK'))('HTTP: %s → %s', async (_name, body, code) => {
  for (const accept of ['application/graphql-response+json', 'application/json']) {
    const r = await post(body, accept);
    expect(r.errors.length).toBeGreaterThan(0);
    for (const e of r.errors) expect(e.extensions?.code, e.message).toBe(code);
    if (accept === 'application/graphql-response+json') expect(r.status).toBe(400);
  }
});

test('HTTP: cost and depth rejections are coded', async () => {
  const strict = await startGateway([model], { armor: { costLimit: { maxCost: 14 }, maxDepth: { n: 3 } } });
  try {
    const send = async (query: string) => {
      const res = await fetch(strict.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
      return ((await res.json()) as { errors: Err[] }).errors[0].extensions?.code;
    };
    expect(await send('{ models { id numLayers hiddenSize vocabSize maxPositions device dtype computeType parameters modelType } }')).toBe('COST_LIMIT_EXCEEDED');
    expect(await send('{ lensResult(id: "x") { prompt { tokens { id } } } }')).toBe('DEPTH_LIMIT_EXCEEDED');
  } finally {
    await strict.stop();
  }
});

async function first(client: ReturnType<typeof wsClient> | 'sse', query: string, variables?: Record<string, unknown>) {
  const errors: Err[] = [];
  if (client === 'sse') {
    // Raw, since graphql-sse's client hides the body of a 400 (yoga answers validation errors with it).
    const res = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: JSON.stringify({ query, variables }) });
    for (const line of (await res.text()).split('\n')) {
      if (line.startsWith('data: {')) errors.push(...((JSON.parse(line.slice(6)) as { errors?: Err[] }).errors ?? []));
    }
    return errors;
  }
  try {
    for await (const ev of client.iterate({ query, variables })) errors.push(...((ev as { errors?: Err[] }).errors ?? []));
  } catch (err) {
    errors.push(...(Array.isArray(err) ? (err as Err[]) : [err as Err]));
  }
  return errors;
}

test('graphql-ws and SSE: armor, parse, validation and variable errors are coded', async () => {
  const ws = wsClient(gw.wsUrl);
  try {
    for (const client of [ws, 'sse' as const]) {
      const sub = 'subscription($k: Int) { lensLayers(input: {model: "gpt2-tiny", prompt: "a", topK: $k}) { __typename } }';
      expect((await first(client, sub, { k: 2.5 }))[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect((await first(client, '{ models { id '))[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
      expect((await first(client, '{ modls { id } }'))[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      const aliases = `{ ${Array.from({ length: 11 }, (_, i) => `m${i}: models { id }`).join(' ')} }`;
      expect((await first(client, aliases))[0]?.extensions?.code).toBe('ALIAS_LIMIT_EXCEEDED');
    }
  } finally {
    await ws.dispose();
  }
});
