// /metrics stays bounded whatever names and URLs clients send: paths without query strings,
// operation names only when they are known documents, no list indices in error labels.
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { LensModel } from '../../src/lens/types.js';
import { startGateway, type Gateway } from '../server/harness.js';
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

const scrape = async () => (await fetch(`${new URL(gw.url).origin}/metrics`)).text();

test('hundreds of distinct operation names, URLs and error paths add no series', async () => {
  const send = (i: number) =>
    fetch(`${gw.url}?nonce=${i}&pad=${'x'.repeat(200)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
      body: JSON.stringify({
        query:
          i % 20 === 0
            ? `query Probe${i} { lens(input: {model: "gpt2-tiny", prompt: "a b", topK: 1, layers: [${i % 3}, ${i % 3}]}) { id } }`
            : `query Probe${i} { models { id nope${i % 2} } } query Named${i} { models { id } }`,
        operationName: `Probe${i}`,
      }),
    });
  // Warm every label combination first, then measure the growth over many more distinct requests.
  for (let i = 0; i < 20; i++) await send(i);
  await fetch(`${gw.url}?query=${encodeURIComponent('query Lens { models { id } }')}`, { headers: { accept: 'application/json' } });
  const before = await scrape();
  for (let i = 20; i < 120; i++) await send(i);
  const after = await scrape();
  const series = (text: string) => text.split('\n').filter((l) => /^(graphql|lensgate)_/.test(l)).map((l) => l.replace(/ [^ ]+$/, ''));
  const grown = series(after).filter((s) => !series(before).includes(s));
  expect(grown.slice(0, 5).join("\n")).toBe("");
  expect(after).not.toMatch(/Probe\d|Named\d|nonce=/);
  expect(after).toMatch(/operationName="other"/);
  expect(after).toMatch(/url="\/graphql"/);
  // Operations of the project's own documents keep their names.
  expect(after).toMatch(/operationName="Lens"/);
});
