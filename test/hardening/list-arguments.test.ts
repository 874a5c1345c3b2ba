// List arguments are validated (no duplicates, inside the result) and priced by the cost limit, and
// one operation's response has a size budget with a coded error.
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensCellsDocument } from '../../src/client/graphql.js';
import type { LensModel } from '../../src/lens/types.js';
import { loadTrustedDocuments } from '../../src/server/trusted-documents.js';
import { http, startGateway, type Gateway } from '../server/harness.js';
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

const input = { model: 'gpt2-tiny', prompt: 'The capital of France is', topK: 5 };
const requests = () => gw.registry.get('gpt2-tiny')!.scheduler.getStats().requests;

test.each([
  ['repeated positions', { positions: [0, 0] }],
  ['repeated layers', { layers: [1, 1] }],
  ['a position outside the prompt', { positions: [99] }],
  ['a layer outside the result', { layers: [7] }],
  ['k above the result topK', { k: 6 }],
])('cells with %s → BAD_USER_INPUT', async (_name, args) => {
  const r = await http(gw.url, LensCellsDocument, { input, ...args });
  expect(r.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
});

test('LensInput.points with a duplicate → BAD_USER_INPUT, before any lens work', async () => {
  const before = requests();
  const r = await http(gw.url, LensCellsDocument, { input: { ...input, points: ['BLOCK_OUTPUT', 'BLOCK_OUTPUT'] } });
  expect(r.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  expect(requests()).toBe(before);
});

test('a long list in a variable is priced by the cost limit and refused before any lens work', async () => {
  const before = requests();
  const positions = Array.from({ length: 6000 }, (_, i) => i);
  const r = await http(gw.url, LensCellsDocument, { input, positions });
  expect(r.status).toBe(400);
  expect(r.errors?.[0].extensions?.code).toBe('COST_LIMIT_EXCEEDED');
  expect(requests()).toBe(before);
});

test('the same through the persisted LensCells document on a trusted-only server', async () => {
  const documents = loadTrustedDocuments('src/client/persisted-documents.json');
  const id = [...documents].find(([, text]) => text.includes('query LensCells('))![0];
  const strict = await startGateway([model], { trustedDocuments: { documents, allowArbitraryDocuments: false } });
  try {
    const res = await fetch(strict.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({ documentId: id, variables: { input, positions: Array.from({ length: 6000 }, (_, i) => i % 5) } }),
    });
    const body = (await res.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
    expect(body.errors?.[0].extensions?.code).toBe('COST_LIMIT_EXCEEDED');
  } finally {
    await strict.stop();
  }
});

test('aliases cannot amplify a response past the budget: RESPONSE_TOO_LARGE, and the answer stays small', async () => {
  // " a" is one GPT-2 token: the longest prompt the model takes.
  const prompt = 'a' + ' a'.repeat(model.info.maxPositions - 1);
  const cells = Array.from({ length: 9 }, (_, i) => `c${i}: cells { token prob topk { id text prob } }`).join(' ');
  const query = `query($p: String!) { lens(input: {model: "gpt2-tiny", prompt: $p, topK: 100}) { id ${cells} } }`;
  const res = await fetch(gw.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query, variables: { p: prompt } }),
  });
  const text = await res.text();
  const body = JSON.parse(text) as { errors?: Array<{ extensions?: { code?: string } }> };
  expect(body.errors?.some((e) => e.extensions?.code === 'RESPONSE_TOO_LARGE')).toBe(true);
  expect(text.length).toBeLessThan(16 * 2 ** 20);
});

test('the budget is configurable and counts every heavy field', async () => {
  const small = await startGateway([model], { limits: { maxResponseBytes: 4000 } });
  try {
    const ok = await fetch(small.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ lens(input: {model: "gpt2-tiny", prompt: "Hi", topK: 2}) { topIndices topProbs } }' }),
    });
    expect(((await ok.json()) as { errors?: unknown }).errors).toBeUndefined();
    for (const field of ['topProbs', 'cells { token }', 'widget', 'tracked { tokenIds probs }', 'stats { entropy }']) {
      const res = await fetch(small.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: `{ lens(input: {model: "gpt2-tiny", prompt: "${'word '.repeat(40)}", topK: 20, trackAcrossLayers: true, stats: true}) { ${field} } }` }),
      });
      const body = (await res.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
      expect(body.errors?.[0].extensions?.code, field).toBe('RESPONSE_TOO_LARGE');
    }
  } finally {
    await small.stop();
  }
});
