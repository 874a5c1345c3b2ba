// Results that last: a real `npm start` child is killed with SIGKILL right after a query returned;
// a new process on the same store file serves that result by id, and answers the identical
// request from the store without running the model (LensResult.cached, /metrics hit counter).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { LensDocument, LensResultByIdDocument } from '../../src/client/graphql.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { http } from '../server/harness.js';
import { startServer, type Child } from '../server/spawn.js';

const storeDir = mkdtempSync(join(tmpdir(), 'lensgate-restart-'));
const children: Child[] = [];
afterAll(async () => {
  await Promise.all(children.map((c) => c.kill('SIGKILL')));
  rmSync(storeDir, { recursive: true, force: true });
});

test('kill -9 after a query returned loses nothing; after restart the result is served and identical requests hit the cache', async () => {
  const tiny = makeCheckpoint(RECIPES['gpt2-tiny']);
  const args = ['--model', `gpt2-tiny=${tiny}`, '--store', join(storeDir, 'results.db')];
  const input = { model: 'gpt2-tiny', prompt: 'The quick brown fox jumps', trackAcrossLayers: true, stats: true };

  const a = await startServer(args);
  children.push(a);
  await a.waitFor(/content hash/);
  const first = await http(a.url, LensDocument, { input });
  // No shutdown path runs: the store must already hold the result when the response arrives.
  a.proc.kill('SIGKILL');
  expect(await a.exited).toBe('SIGKILL');
  expect(first.errors).toBeUndefined();
  expect(first.data!.lens.cached).toBe(false);
  const id = first.data!.lens.id;

  const b = await startServer(args);
  children.push(b);
  const byId = await http(b.url, LensResultByIdDocument, { id });
  expect(byId.errors).toBeUndefined();
  const { prompt, ...stored } = byId.data!.lensResult!;
  const { prompt: firstPrompt, ...computed } = first.data!.lens;
  expect(stored).toEqual(computed);
  expect(prompt.text).toBe(input.prompt);
  expect(prompt.id).toBe(firstPrompt.id);
  expect(prompt.tokens.map((t) => t.text)).toEqual(computed.tokens.map((t) => t.text));

  await b.waitFor(/content hash/);
  const again = await http(b.url, LensDocument, { input });
  expect(again.errors).toBeUndefined();
  expect(again.data!.lens.cached).toBe(true);
  expect(again.data!.lens.id).toBe(id);
  expect(again.data!.lens.topProbs).toEqual(first.data!.lens.topProbs);
  const other = await http(b.url, LensDocument, { input: { ...input, topK: 3 } });
  expect(other.data!.lens.cached).toBe(false);

  const metrics = await (await fetch(new URL('/metrics', b.url))).text();
  expect(metrics).toMatch(/lensgate_cache_hits_total\{model="gpt2-tiny"\} 1\b/);
  expect(metrics).toMatch(/lensgate_cache_misses_total\{model="gpt2-tiny"\} 1\b/);
  // Nothing ran the identical request: the model saw one request (topK 3) in this process.
  expect(metrics).toMatch(/lensgate_lens_requests_total\{model="gpt2-tiny"\} 1\b/);
  expect(await b.kill()).toBe(0);
}, 300_000);
