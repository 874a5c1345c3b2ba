// Graceful shutdown: in-flight work is cancelled, graphql-ws clients get 1001, and `npm start`
// exits 0 on SIGTERM.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { print } from 'graphql';
import { expect, test } from 'vitest';
import { LensLayersDocument, type LensLayersSubscription } from '../../src/client/graphql.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { instrument, startGateway, wsClient } from './harness.js';
import { DEEP_GPT2, openDeepGpt2 } from './models.js';

/** Subscribes, resolves once the first LayerResult arrives, and reports the socket's close code. */
function subscribeUntilFirstLayer(wsUrl: string) {
  let closeCode: (code: number) => void;
  const closed = new Promise<number>((r) => (closeCode = r));
  // The socket stays open after its only operation ends (with CANCELLED): otherwise the lazy client
  // closes it itself (1000), racing the server's 1001 — a race deflate's queued sends made it win.
  const client = wsClient(wsUrl, { lazyCloseTimeout: 30_000, on: { closed: (e) => closeCode((e as CloseEvent).code) } });
  const firstLayer = new Promise<void>((resolve, reject) => {
    client.subscribe<LensLayersSubscription>(
      { query: print(LensLayersDocument), variables: { input: { model: 'gpt2-deep', prompt: 'The quick brown fox' } } },
      {
        next: (r) => {
          if (r.data?.lensLayers.__typename === 'LayerResult') resolve();
        },
        error: () => undefined,
        complete: () => undefined,
      },
    );
    setTimeout(() => reject(new Error('no LayerResult within 20 s')), 20_000);
  });
  return { client, firstLayer, closed };
}

test('stop(): running jobs are cancelled and graphql-ws clients get 1001', async () => {
  const probe = instrument(await openDeepGpt2(), { layerDelayMs: 25 });
  const gw = await startGateway([probe.model]);
  const sub = subscribeUntilFirstLayer(gw.wsUrl);
  await sub.firstLayer;
  await gw.stop();
  expect(await sub.closed).toBe(1001);
  await new Promise((r) => setTimeout(r, 150));
  const at = probe.layersComputed;
  await new Promise((r) => setTimeout(r, 300));
  expect(probe.layersComputed).toBe(at);
  expect(at).toBeLessThan(24);
  await probe.model.close();
});

test('npm start: logs the execution provider, serves, and exits 0 on SIGTERM', async () => {
  const tinyDir = makeCheckpoint(RECIPES['gpt2-tiny']);
  const deepDir = makeCheckpoint(DEEP_GPT2);
  const storeDir = mkdtempSync(join(tmpdir(), 'lensgate-shutdown-'));
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/serve.ts', '--model', `gpt2-tiny=${tinyDir}`, '--model', `gpt2-deep=${deepDir}`, '--device', 'cpu', '--store', join(storeDir, 'results.db')],
    { env: { ...process.env, PORT: '0', NODE_ENV: 'production' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let seenUrl = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      seenUrl ||= /listening on (\S+)/.exec(out)?.[1] ?? '';
      if (seenUrl && out.includes('lensgate: ready')) resolve(seenUrl);
    });
    void exited.then(() => reject(new Error(`server exited early:\n${out}`)));
  });
  expect(out).toMatch(/model gpt2-tiny \(gpt2, 3 layers\) on cpu execution provider/);
  expect(out).toMatch(/model gpt2-deep \(gpt2, 24 layers\) on cpu execution provider/);
  expect((await fetch(new URL('/ready', url))).status).toBe(200);

  const sub = subscribeUntilFirstLayer(url.replace(/^http/, 'ws'));
  await sub.firstLayer;
  child.kill('SIGTERM');
  expect(await sub.closed).toBe(1001);
  expect(await exited).toBe(0);
  expect(out).toMatch(/SIGTERM/);
  rmSync(storeDir, { recursive: true, force: true });
});
