// GET /metrics: Prometheus text with GraphQL metrics from yoga's plugin and lensgate's per-model counters.
import { expect, test } from 'vitest';
import { LensDocument } from '../../src/client/graphql.js';
import type { LensModel } from '../../src/lens/types.js';
import { http, serveTinyGpt2, type Gateway } from './harness.js';

let gw: Gateway;
let model: LensModel;
serveTinyGpt2((served) => ({ gw, model } = served));

async function scrape(): Promise<string> {
  const res = await fetch(`${new URL(gw.url).origin}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  return res.text();
}

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('counts lens requests and batches per model, and exposes queue depth and model info', async () => {
  const before = value(await scrape(), 'lensgate_lens_requests_total{model="gpt2-tiny"}') ?? 0;
  const prompts = ['The capital of France is', 'Hello', 'One two three'];
  const results = await Promise.all(prompts.map((prompt) => http(gw.url, LensDocument, { input: { model: 'gpt2-tiny', prompt } })));
  results.forEach((r) => expect(r.errors).toBeUndefined());
  const text = await scrape();
  expect(value(text, 'lensgate_lens_requests_total{model="gpt2-tiny"}')).toBe(before + 3);
  const batches = value(text, 'lensgate_lens_batches_total{model="gpt2-tiny"}')!;
  expect(batches).toBeGreaterThanOrEqual(1);
  expect(batches).toBeLessThanOrEqual(before + 3);
  expect(value(text, 'lensgate_queue_depth{model="gpt2-tiny"}')).toBe(0);
  expect(text).toMatch(/^lensgate_model_info\{model="gpt2-tiny",model_type="gpt2",layers="3",device="cpu",compute_type="float32"\} 1$/m);
});

test('includes GraphQL request metrics and process metrics', async () => {
  await http(gw.url, LensDocument, { input: { model: 'gpt2-tiny', prompt: '' } });
  const text = await scrape();
  expect(text).toMatch(/^graphql_envelop_request_duration_count\{.*operationName="Lens".*\} \d+/m);
  expect(text).toMatch(/^graphql_envelop_error_result\{.*operationName="Lens".*\} [1-9]/m);
  expect(value(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
});
