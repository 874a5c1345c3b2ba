// Fields added after the first hardening pass are priced and bounded too: generation counts toward
// the cost limit (one generated token like several list elements), lensCompare's list arguments are
// validated and priced on both sides, and the PACKED fields, the PositionResult grids and the
// comparison grids count toward the response-size budget.
import { print } from 'graphql';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensLayersDocument, LensCompareDocument } from '../../src/client/graphql.js';
import type { LensModel } from '../../src/lens/types.js';
import { http, startGateway, wsClient, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

let model: LensModel;
let gw: Gateway;
let small: Gateway;
beforeAll(async () => {
  model = await openTinyGpt2();
  gw = await startGateway([model]);
  small = await startGateway([model], { limits: { maxResponseBytes: 4000 } });
});
afterAll(async () => {
  await gw.stop();
  await small.stop();
  await model.close();
});

type Body = { data?: unknown; errors?: Array<{ message: string; extensions?: { code?: string } }> };
async function post(url: string, query: string, variables?: Record<string, unknown>): Promise<Body & { status: number }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
  return { ...((await res.json()) as Body), status: res.status };
}
const requests = (g: Gateway) => g.registry.get('gpt2-tiny')!.scheduler.getStats().requests;

test('generation is priced: aliasing many generating requests into one operation → COST_LIMIT_EXCEEDED before any lens work', async () => {
  const before = requests(gw);
  const gen = (alias: string) => `${alias}: lensCompare(a: $a, b: $a) { positions }`;
  const query = `query($a: LensInput!) { ${['c0', 'c1', 'c2', 'c3', 'c4'].map(gen).join(' ')} }`;
  const input = { model: 'gpt2-tiny', prompt: 'Hi', generate: { maxNewTokens: 64 } };
  const r = await post(gw.url, query, { a: input });
  expect(r.status).toBe(400);
  expect(r.errors?.[0].extensions?.code).toBe('COST_LIMIT_EXCEEDED');
  expect(requests(gw)).toBe(before);
  // The same operation without generation is within the limit (and runs).
  const ok = await post(gw.url, query, { a: { model: 'gpt2-tiny', prompt: 'Hi' } });
  expect(ok.errors).toBeUndefined();
});

test('lensCompare list arguments are validated and priced on both sides', async () => {
  const a = { model: 'gpt2-tiny', prompt: 'The capital of France is' };
  const dup = await http(gw.url, LensCompareDocument, { a, b: { ...a, layers: [1, 1] } });
  expect(dup.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  const before = requests(gw);
  const long = await http(gw.url, LensCompareDocument, { a, b: { ...a, layers: Array.from({ length: 6000 }, (_, i) => i) } });
  expect(long.errors?.[0].extensions?.code).toBe('COST_LIMIT_EXCEEDED');
  expect(requests(gw)).toBe(before);
});

const big = `model: "gpt2-tiny", prompt: "${'word '.repeat(120)}", topK: 20, trackAcrossLayers: true, stats: true, points: [BLOCK_OUTPUT, ATTENTION_OUTPUT]`;

test.each([
  'topIndices',
  'topProbs',
  'trackedIds',
  'trackedProbs',
  // Stats are one value per cell, so they need the longest prompt and all three together to be large.
  'entropy klToFinal finalTop1Rank',
  'attention { topProbs }',
])('LensResult.packed { %s } counts toward the response budget → RESPONSE_TOO_LARGE', async (field) => {
  const r = await post(small.url, `{ lens(input: {${big}}) { packed { ${field} } } }`);
  expect(r.errors?.[0].extensions?.code).toBe('RESPONSE_TOO_LARGE');
  // Under the default budget the same selection is answered.
  const ok = await post(gw.url, `{ lens(input: {${big}}) { packed { ${field} } } }`);
  expect(ok.errors).toBeUndefined();
});

test('a small packed selection stays within a small budget', async () => {
  const r = await post(small.url, '{ lens(input: {model: "gpt2-tiny", prompt: "Hi", topK: 2}) { packed { topIndices topProbs } } }');
  expect(r.errors).toBeUndefined();
});

async function subscriptionCodes(url: string, query: string, input: Record<string, unknown>): Promise<string[]> {
  const client = wsClient(url);
  const codes: string[] = [];
  try {
    await new Promise<void>((resolve) => {
      client.subscribe(
        { query, variables: { input } },
        {
          next: (r) => void (r.errors ? codes.push(String(r.errors[0].extensions?.code)) : codes.push('ok')),
          error: (e) => {
            codes.push(String((e as Array<{ extensions?: { code?: string } }>)[0]?.extensions?.code ?? e));
            resolve();
          },
          complete: resolve,
        },
      );
    });
  } finally {
    await client.dispose();
  }
  return codes;
}

test('LayerResult.packed over graphql-ws counts toward the budget of the whole subscription', async () => {
  const input = { model: 'gpt2-tiny', prompt: 'word '.repeat(40), topK: 20 };
  const query = 'subscription($input: LensInput!) { lensLayers(input: $input) { __typename ... on LayerResult { packed { topIndices topProbs tokens { id text } } } } }';
  expect(await subscriptionCodes(small.wsUrl, query, input)).toContain('RESPONSE_TOO_LARGE');
  expect(await subscriptionCodes(gw.wsUrl, query, input)).not.toContain('RESPONSE_TOO_LARGE');
});

test('PositionResult grids (generation) count toward the budget', async () => {
  const input = { model: 'gpt2-tiny', prompt: 'word '.repeat(10), topK: 20, generate: { maxNewTokens: 30 } };
  const query = 'subscription($input: LensInput!) { lensLayers(input: $input) { __typename ... on PositionResult { topIndices topProbs } } }';
  expect(await subscriptionCodes(small.wsUrl, query, input)).toContain('RESPONSE_TOO_LARGE');
  expect(await subscriptionCodes(gw.wsUrl, query, input)).not.toContain('RESPONSE_TOO_LARGE');
});

test('lensCompare grids count toward the budget', async () => {
  const a = { model: 'gpt2-tiny', prompt: 'word '.repeat(60) };
  const r = await http(small.url, LensCompareDocument, { a, b: { ...a, prompt: 'thing '.repeat(60) } });
  expect(r.errors?.map((e) => e.extensions?.code)).toContain('RESPONSE_TOO_LARGE');
  const ok = await http(gw.url, LensCompareDocument, { a, b: { ...a, prompt: 'thing '.repeat(60) } });
  expect(ok.errors).toBeUndefined();
});

// Keeps the LensLayers import honest: the client's own subscription document stays within the cost limit with generation.
test('the client documents stay within the cost limit at the largest generation the server allows', async () => {
  const codes = await subscriptionCodes(gw.wsUrl, print(LensLayersDocument), { model: 'gpt2-tiny', prompt: 'Hi', generate: { maxNewTokens: 64 } });
  expect(codes).not.toContain('COST_LIMIT_EXCEEDED');
  const c = await http(gw.url, LensCompareDocument, {
    a: { model: 'gpt2-tiny', prompt: 'Hi', generate: { maxNewTokens: 64 } },
    b: { model: 'gpt2-tiny', prompt: 'Hello', generate: { maxNewTokens: 64 } },
  });
  expect(c.errors?.map((e) => e.extensions?.code) ?? []).not.toContain('COST_LIMIT_EXCEEDED');
});
