// LensInput goes through the core's validation (src/lens/validate.ts) plus this server's limits, and
// the prompt is tokenized once per request: the gateway's tokenization rides with the job
// (LensOptions.promptIds), so the model does not tokenize it again.

import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensDocument, LensLayersDocument } from '../../src/client/graphql.js';
import type { LensModel, LensRequest } from '../../src/lens/types.js';
import { collect, http, sseClient, startGateway, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

let model: LensModel;
let gw: Gateway;
let tokenizeCalls: string[] = [];
let requests: LensRequest[] = [];

beforeAll(async () => {
  model = await openTinyGpt2();
  // Delegates to the real model; records what the gateway asks of it.
  const probe: LensModel = {
    get info() {
      return model.info;
    },
    tokenize: (text) => (tokenizeCalls.push(text), model.tokenize(text)),
    decode: (id) => model.decode(id),
    lens: (prompt, options) => model.lens(prompt, options),
    lensNaive: (prompt, options) => model.lensNaive(prompt, options),
    lensBatch: (batch) => (requests.push(...batch), model.lensBatch(batch)),
    close: async () => undefined,
  };
  gw = await startGateway([probe], { limits: { maxTopK: 10, maxNewTokens: 4 } });
});
afterAll(async () => {
  await gw?.stop();
  await model?.close();
});

const PROMPT = 'The quick brown fox jumps over';

test('Query.lens and Subscription.lensLayers tokenize the prompt once and hand the model its ids', async () => {
  const ids = model.tokenize(PROMPT).map((t) => t.id);
  for (const run of [
    () => http(gw.url, LensDocument, { input: { model: model.info.id, prompt: PROMPT, topK: 3 } }),
    () => collect(sseClient(gw.url), LensLayersDocument, { input: { model: model.info.id, prompt: PROMPT, topK: 3 } }),
  ]) {
    tokenizeCalls = [];
    requests = [];
    await run();
    expect(tokenizeCalls).toEqual([PROMPT]);
    expect(requests).toHaveLength(1);
    expect(requests[0].options?.promptIds).toEqual(ids);
  }
});

test('server limits and model bounds give coded errors naming the bound; nothing reaches the model', async () => {
  requests = [];
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ topK: 11 }, 'BAD_USER_INPUT', /topK must be an integer between 1 and 10, got 11/],
    [{ topK: 0 }, 'BAD_USER_INPUT', /between 1 and 10/],
    [{ generate: { maxNewTokens: 5 } }, 'BAD_USER_INPUT', /≤ 4 \(server limit\)/],
    [{ layers: [0, 3] }, 'BAD_USER_INPUT', new RegExp(`layer 3 is out of range: ${model.info.id} has layers 0..2`)],
    [{ layers: [1, 1] }, 'BAD_USER_INPUT', /layer 1 is listed twice/],
    [{ layers: [] }, 'BAD_USER_INPUT', /layers must not be empty/],
    [{ points: ['BLOCK_OUTPUT', 'BLOCK_OUTPUT'] }, 'BAD_USER_INPUT', /points contains duplicates/],
    [{ prompt: '' }, 'BAD_USER_INPUT', /prompt must not be empty/],
    [{ prompt: 'x'.repeat(20_001) }, 'PROMPT_TOO_LONG', /longer than 20000 characters/],
    [{ prompt: 'word '.repeat(model.info.maxPositions + 1) }, 'PROMPT_TOO_LONG', /accepts at most/],
  ];
  for (const [change, code, message] of cases) {
    const r = await http(gw.url, LensDocument, { input: { model: model.info.id, prompt: PROMPT, ...change } as never });
    expect(r.errors?.[0].extensions?.code, JSON.stringify(change).slice(0, 80)).toBe(code);
    expect(r.errors?.[0].message).toMatch(message);
  }
  expect(requests).toEqual([]);
});
