// The viewer while the gateway's models load (real chromium, live gateway): the loading model's
// progress in the status line and bar, its option disabled until it is READY, a failed model marked,
// and the first run once a model serves. The load is held at a block boundary by its own progress
// hook (no sleeps).

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { openModel } from '../../src/lens/index.js';
import type { LoadProgress } from '../../src/lens/types.js';
import { buildApp, type App } from '../../src/server/app.js';
import { ModelRegistry, type ModelOpener, type ModelState } from '../../src/server/models.js';
import { MemoryResultStore } from '../../src/server/result-store.js';
import { gatewayApi } from '../../resolvers/index.js';
import { makeBrokenCheckpoint, makeCheckpoint, RECIPES } from '../helpers/fixtures.js';
import { launchViewerBrowser } from './browser.js';

let browser: Browser;
let page: Page;
let app: App;
let registry: ModelRegistry;
let origin: string;
let loaded: Promise<ModelState[]>;
let release!: () => void;
const held = new Promise<void>((r) => (release = r));
let reached!: () => void;
const atLayer1 = new Promise<void>((r) => (reached = r));

beforeAll(async () => {
  registry = new ModelRegistry();
  app = buildApp({ registry, api: gatewayApi({ registry, store: new MemoryResultStore() }), port: 0, host: '127.0.0.1', logging: false });
  origin = new URL((await app.start()).url).origin;
  const opener: ModelOpener = (dir, opts) =>
    openModel(dir, {
      ...opts,
      onProgress: async (p: LoadProgress) => {
        await opts.onProgress?.(p);
        if (opts.id === 'slow' && p.layersBuilt === 1) {
          reached();
          await held;
        }
      },
    });
  loaded = registry.load(
    [
      { id: 'broken', dir: makeBrokenCheckpoint('missing-weight').dir },
      { id: 'slow', dir: makeCheckpoint(RECIPES['gpt2-tiny']) },
    ],
    opener,
    'cpu',
  );
  await atLayer1;
  ({ browser, page } = await launchViewerBrowser({ width: 1280, height: 700 }));
});

afterAll(async () => {
  release();
  await loaded;
  await browser?.close();
  await app?.stop();
  await registry?.close();
});

test('shows the loading model\'s progress, marks the failed one, and runs once the model is READY', async () => {
  await page.goto(`${origin}/#prompt=The%20quick%20brown%20fox`);
  await page.waitForFunction(() => document.querySelector('#status')?.textContent?.startsWith('Loading slow'), null, { timeout: 30_000 });
  expect(await page.textContent('#status')).toMatch(/^Loading slow: loading 1\/3 layers, \d+ MiB \/ \d+ MiB \(\d+%\)$/);
  expect(await page.isHidden('#progress')).toBe(false);
  const options = await page.$$eval('#model option', (os) => os.map((o) => ({ text: o.textContent, disabled: (o as HTMLOptionElement).disabled })));
  expect(options).toEqual([
    { text: 'broken — failed (CHECKPOINT_INVALID)', disabled: true },
    { text: expect.stringMatching(/^slow — loading 1\/3 layers/), disabled: true },
  ]);
  // The comparison's model picker offers the same choices.
  expect(await page.$$eval('#model-b option', (os) => os.map((o) => ({ text: o.textContent, disabled: (o as HTMLOptionElement).disabled })))).toEqual(options);
  expect(await page.evaluate(() => document.body.dataset.state)).toBe('loading');
  await page.screenshot({ path: join(tmpdir(), 'lensgate-viewer-loading.png') });

  release();
  // The modelStatus subscription brings READY: the viewer enables the model and auto-runs the prompt.
  await page.waitForFunction(() => document.body.dataset.state === 'done', null, { timeout: 60_000 });
  expect(await page.$eval('#model', (s) => (s as HTMLSelectElement).value)).toBe('slow');
  expect(await page.$eval('#model option[value="slow"]', (o) => (o as HTMLOptionElement).disabled)).toBe(false);
  expect(await page.$eval('#model-b option[value="slow"]', (o) => (o as HTMLOptionElement).disabled)).toBe(false);
  expect(await page.textContent('#status')).not.toMatch(/^Loading/);
  await page.screenshot({ path: join(tmpdir(), 'lensgate-viewer-loaded.png') });
});
