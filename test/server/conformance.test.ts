// graphql-http's own server audits (GraphQL over HTTP spec) against the live gateway. Every MUST has
// to pass; SHOULD/MAY results are printed so the report can list the ones that do not and why.

import { serverAudits, type AuditResult } from 'graphql-http';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { LensModel } from '../../src/lens/types.js';
import { startGateway, type Gateway } from './harness.js';
import { openTinyGpt2 } from './models.js';

let gw: Gateway;
let model: LensModel;
const others: Array<{ name: string; result: AuditResult }> = [];

beforeAll(async () => {
  model = await openTinyGpt2();
  gw = await startGateway([model]);
});
afterAll(async () => {
  const failing = others.filter((o) => o.result.status !== 'ok');
  console.log(
    `graphql-http audits: ${others.length} SHOULD/MAY audits, ${failing.length} not ok${failing.length ? ":" : ""}\n` +
      failing.map((o) => `  ${o.name} — ${o.result.status === 'ok' ? '' : o.result.reason}`).join('\n'),
  );
  await gw.stop();
  await model.close();
});

for (const audit of serverAudits({ url: () => gw.url })) {
  test(audit.name, async () => {
    const result = await audit.fn();
    if (audit.name.startsWith('MUST')) {
      expect(result.status === 'ok' ? 'ok' : `${result.status}: ${result.reason}`).toBe('ok');
    } else {
      others.push({ name: audit.name, result });
    }
  });
}
