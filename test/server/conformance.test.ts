// graphql-http's own server audits (GraphQL over HTTP spec) against the live gateway: every MUST,
// SHOULD and MAY audit has to pass, as the README says.

import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { LensModel } from '../../src/lens/types.js';
import { startGateway, type Gateway } from './harness.js';
import { openTinyGpt2 } from './models.js';

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

const audits = serverAudits({ url: () => gw.url });

test('the audit list covers all three levels', () => {
  for (const level of ['MUST', 'SHOULD', 'MAY']) expect(audits.some((a) => a.name.startsWith(level)), level).toBe(true);
});

for (const audit of audits) {
  test(audit.name, async () => {
    const result = await audit.fn();
    expect(result.status === 'ok' ? 'ok' : `${result.status}: ${result.reason}`).toBe('ok');
  });
}
