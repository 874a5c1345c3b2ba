// One client cannot take every slot of a model's queue: each gets a share, and another client is
// still admitted while the first one is at its limit.
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { LensModel } from '../../src/lens/types.js';
import { ModelScheduler } from '../../src/server/scheduler.js';
import { http, instrument, startGateway } from '../server/harness.js';
import { LensDocument } from '../../src/client/graphql.js';
import { openDeepGpt2 } from '../server/models.js';

let model: LensModel;
beforeAll(async () => {
  model = instrument(await openDeepGpt2(), { layerDelayMs: 5 }).model;
});
afterAll(() => model.close());

test('a client at its share gets OVERLOADED while another client is admitted', async () => {
  const s = new ModelScheduler(model, { maxQueue: 8 });
  expect(s.maxPerClient).toBe(2);
  const settled = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code ?? 'error');
  const greedy = Array.from({ length: 6 }, (_, i) => settled(s.run(`greedy ${i}`, {}, { client: 'greedy' })));
  const polite = settled(s.run('polite', {}, { client: 'polite' }));
  const results = await Promise.all(greedy);
  expect(results.filter((r) => r === 'ok')).toHaveLength(2);
  expect(results.filter((r) => r === 'OVERLOADED')).toHaveLength(4);
  expect(await polite).toBe('ok');
  // Slots come back when jobs finish.
  expect(await settled(s.run('again', {}, { client: 'greedy' }))).toBe('ok');
});

test('over HTTP the client is its address: one address cannot fill the whole queue', async () => {
  const gw = await startGateway([model], { scheduler: { maxQueue: 8 } });
  try {
    const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => http(gw.url, LensDocument, { input: { model: 'gpt2-deep', prompt: `p ${i}` } })));
    const codes = rs.map((r) => r.errors?.[0]?.extensions?.code ?? 'ok');
    expect(codes.filter((c) => c === 'ok')).toHaveLength(2);
    expect(codes.filter((c) => c === 'OVERLOADED')).toHaveLength(4);
  } finally {
    await gw.stop();
  }
});
