// `npm start` as an operator runs it: it listens before its models are loaded, prints load progress
// (plain lines when stderr is not a terminal, a live bar when it is), keeps serving when one of its
// models fails to load, and exits only when none loads.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { expect, test } from 'vitest';
import WebSocket from 'ws';
import { loadReporter } from '../../src/cli/progress.js';
import type { LoadProgress, ModelInfo } from '../../src/lens/types.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

function serve(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/serve.ts', '--port', '0', '--host', '127.0.0.1', ...args], {
    env: { ...process.env, NODE_NO_WARNINGS: '1' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  /** Resolves with stdout once it matches. */
  const waitFor = (re: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const check = () => (re.test(stdout) ? resolve(stdout) : undefined);
      child.stdout.on('data', check);
      void exited.then((code) => reject(new Error(`exited ${code} before ${re}:\n${stdout}\n${stderr}`)));
      check();
    });
  return { child, waitFor, exited, out: () => ({ stdout, stderr }) };
}

test('a model that fails to load does not stop the others; progress lines go to stderr', async () => {
  const empty = mkdtempSync(join(tmpdir(), 'lensgate-empty-'));
  writeFileSync(join(empty, 'config.json'), JSON.stringify({ model_type: 'gpt2' }));
  const s = serve(['--model', `bad=${empty}`, '--model', `good=${makeCheckpoint(RECIPES['gpt2-tiny'])}`, '--device', 'cpu']);
  try {
    const listening = await s.waitFor(/listening on (http:\S+)/);
    const url = /listening on (http:\S+)/.exec(listening)![1];
    await s.waitFor(/ready \(1 of 2 models\)/);
    const base = new URL(url).origin;
    expect((await fetch(`${base}/ready?model=good`)).status).toBe(200);
    expect((await fetch(`${base}/ready?model=bad`)).status).toBe(503);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ models { id status error { code } } }' }),
    });
    expect(((await res.json()) as { data: unknown }).data).toEqual({
      models: [
        { id: 'bad', status: 'FAILED', error: { code: 'CHECKPOINT_INVALID' } },
        { id: 'good', status: 'READY', error: null },
      ],
    });
    const { stderr } = s.out();
    expect(stderr).toMatch(/model bad FAILED to load \(CHECKPOINT_INVALID\)/);
    // Not a terminal: plain lines, no carriage returns.
    expect(stderr).toMatch(/lensgate: loading model good: 3\/3 layers, [\d.]+ MiB \/ [\d.]+ MiB mapped\n/);
    expect(stderr).not.toContain('\r');
  } finally {
    s.child.kill('SIGTERM');
    await s.exited;
    rmSync(empty, { recursive: true, force: true });
  }
});

test('when no model loads, npm start exits with status 1', async () => {
  const s = serve(['--model', `gone=${join(tmpdir(), 'lensgate-no-such-dir')}`]);
  expect(await s.exited).toBe(1);
  expect(s.out().stderr).toMatch(/no model could be loaded/);
});

test('--max-connections-per-address caps the sockets one address holds; a value that is not a positive integer is refused', async () => {
  const bad = serve(['--max-connections', '0']);
  expect(await bad.exited).toBe(2);
  expect(bad.out().stderr).toMatch(/--max-connections must be an integer ≥ 1 \(got 0\)/);
  const s = serve(['--model', `good=${makeCheckpoint(RECIPES['gpt2-tiny'])}`, '--device', 'cpu', '--store', 'memory', '--max-connections-per-address', '1']);
  try {
    const url = /listening on (http:\S+)/.exec(await s.waitFor(/listening on (http:\S+)/))![1].replace(/^http/, 'ws');
    const open = (): Promise<WebSocket | number> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url, 'graphql-transport-ws');
        ws.once('open', () => resolve(ws));
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('error', reject);
      });
    const first = await open();
    expect(first).toBeInstanceOf(WebSocket);
    expect(await open()).toBe(429);
    (first as WebSocket).close();
  } finally {
    s.child.kill('SIGTERM');
    await s.exited;
  }
});

const info = { id: 'm', numLayers: 4 } as ModelInfo;
const step = (layersBuilt: number): LoadProgress => ({ sessionsBuilt: layersBuilt + 1, sessions: 5, layersBuilt, layers: 4, bytesMapped: layersBuilt * 2 ** 20, bytesTotal: 4 * 2 ** 20, info });

test('on a terminal the reporter draws one bar that it redraws in place', () => {
  const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  let out = '';
  tty.on('data', (d: Buffer) => (out += d));
  const r = loadReporter('model m', tty as unknown as NodeJS.WriteStream);
  for (let i = 0; i <= 4; i++) r.onProgress(step(i));
  r.done(true);
  expect(out).toContain('model m [');
  expect(out).toContain('4/4 layers | 4.0 MiB / 4.0 MiB mapped');
  expect(out).toContain('100%');
  expect(out.split('\n').filter((l) => l.includes('model m [')).length).toBe(1);
});

test('off a terminal it prints a plain line per tenth of the load', () => {
  const pipe = Object.assign(new PassThrough(), { isTTY: false });
  let out = '';
  pipe.on('data', (d: Buffer) => (out += d));
  const r = loadReporter('model m', pipe as unknown as NodeJS.WriteStream);
  for (let i = 0; i <= 4; i++) r.onProgress(step(i));
  r.done(true);
  expect(out.trim().split('\n')).toEqual([0, 1, 2, 3, 4].map((i) => `loading model m: ${i}/4 layers, ${i}.0 MiB / 4.0 MiB mapped`));
});
