// The viewer's `#result=<id>` link in a real browser (Debian chromium via playwright-core): a result
// computed by one gateway is opened after that gateway stopped and a new one started on the same
// SQLite store file — the heatmap, trajectories and stats are the stored ones, nothing recomputed.
// LENSGATE_SCREENSHOTS=1 also writes the docs picture.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensCellsDocument } from '../../src/client/graphql.js';
import { type LensModel, openModel } from '../../src/lens/index.js';
import { SqliteResultStore } from '../../src/server/sqlite-store.js';
import { http, startGateway, type Gateway } from '../server/harness.js';
import { launchViewerBrowser } from './browser.js';

const MODEL_DIR = fileURLToPath(new URL('../../models/tiny-facts-gpt2', import.meta.url));
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));

let model: LensModel;
let browser: Browser;
let page: Page;
let dir: string;
let gw: Gateway | null = null;
let store: SqliteResultStore | null = null;
let pageErrors: string[];

async function serve(file: string): Promise<Gateway> {
  store = new SqliteResultStore(file);
  gw = await startGateway([model], { store });
  return gw;
}

async function shutdown(): Promise<void> {
  await gw?.stop();
  await store?.close();
  [gw, store] = [null, null];
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'lensgate-viewer-store-'));
  model = await openModel(MODEL_DIR, { id: 'tiny-facts-gpt2', device: 'cpu' });
  ({ browser, page, pageErrors } = await launchViewerBrowser({ width: 1280, height: 820 }));
});

afterAll(async () => {
  await browser?.close();
  await shutdown();
  await model?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function waitDone(): Promise<string> {
  await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(document.body.dataset.state ?? ''), undefined, { timeout: 60_000 });
  return page.evaluate(() => document.body.dataset.state ?? '');
}

test('a stored result opens by #result=<id> after the gateway restarts on the same SQLite file', async () => {
  const file = join(dir, 'lensgate.db');
  const input = { model: 'tiny-facts-gpt2', prompt: 'The capital of France is Paris. The capital of Italy is', topK: 3, trackAcrossLayers: true, stats: true };
  const first = await serve(file);
  const computed = await http(first.url, LensCellsDocument, { input, k: 1 });
  expect(computed.errors).toBeUndefined();
  const { id, layers, cells } = computed.data!.lens;
  await shutdown();

  // A new gateway on the same file; counting the model's runs proves the page does not recompute.
  const second = await serve(file);
  let runs = 0;
  const lensBatch = model.lensBatch.bind(model);
  model.lensBatch = (reqs) => {
    runs++;
    return lensBatch(reqs);
  };
  try {
    await page.goto(`${new URL(second.url).origin}/#result=${id}`);
    expect(await waitDone()).toBe('done');
    expect(await page.locator('#status').textContent()).toContain(`Stored result ${id}`);
    expect(await page.inputValue('#prompt')).toBe(input.prompt);
    expect(page.url()).toContain(`result=${id}`);

    const shown = await page.$$eval('#heatmap td', (tds) => tds.map((td) => ({ layer: Number(td.dataset.layer), pos: Number(td.dataset.pos), token: td.dataset.token, pending: td.classList.contains('pending') })));
    expect(shown).toHaveLength(layers.length * cells[0].length);
    for (const c of shown) {
      expect(c.pending).toBe(false);
      expect(c.token, `layer ${c.layer} position ${c.pos}`).toBe(cells[layers.indexOf(c.layer)][c.pos].token);
    }
    // Trajectories and stats came with it: a pin draws one point per layer; the entropy colouring works.
    await page.locator(`#heatmap td[data-layer="${layers.length - 1}"][data-pos="${cells[0].length - 1}"]`).click();
    expect(await page.locator('#chart svg circle').count()).toBe(layers.length);
    await page.selectOption('#color', 'entropy');
    await expect.poll(() => page.locator('#legend').textContent()).toContain('entropy');
    if (process.env.LENSGATE_SCREENSHOTS) await page.screenshot({ path: `${DOCS}viewer-stored-result.png`, fullPage: true });
    expect(runs).toBe(0);

    // An id the store does not hold says so with a code.
    await page.goto(`${new URL(second.url).origin}/#result=00000000-0000-4000-8000-000000000000`);
    await page.reload();
    expect(await waitDone()).toBe('error');
    expect(await page.locator('#error').textContent()).toContain('NOT_FOUND');
    expect(pageErrors).toEqual([]);
  } finally {
    model.lensBatch = lensBatch;
  }
});
