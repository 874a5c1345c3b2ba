// The viewer's lens picker in a real browser (Debian chromium via playwright-core) against a live
// gateway serving the embedded trained model with its own tuned and Jacobian lenses, next to a model
// without lenses: the picker offers what the selected model serves, each kind's heatmap shows what
// Query.lens computes for that kind, and the choice lives in the URL. LENSGATE_SCREENSHOTS=1 also
// writes the docs pictures (docs/viewer-lens-*.png).

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensCellsDocument } from '../../src/client/graphql.js';
import { type LensModel, openModel } from '../../src/lens/index.js';
import { http, startGateway, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';
import { launchViewerBrowser, openIdle, runAndWait } from './browser.js';

const MODEL_DIR = fileURLToPath(new URL('../../models/tiny-facts-gpt2', import.meta.url));
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));
const PROMPT = 'The capital of France is';

let gw: Gateway;
let model: LensModel;
let plain: LensModel;
let browser: Browser;
let page: Page;
let pageErrors: string[];

beforeAll(async () => {
  model = await openModel(MODEL_DIR, {
    id: 'tiny-facts-gpt2',
    device: 'cpu',
    lenses: { tuned: join(MODEL_DIR, 'lenses', 'tuned'), jacobian: join(MODEL_DIR, 'lenses', 'tiny-facts-gpt2_jacobian_lens.pt') },
  });
  plain = await openTinyGpt2();
  gw = await startGateway([model, plain]);
  ({ browser, page, pageErrors } = await launchViewerBrowser({ width: 1280, height: 760 }));
  await openIdle(page, `${new URL(gw.url).origin}/#autorun=0`);
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await model?.close();
  await plain?.close();
});

/** The top bar's subtitle, the grid's heading and the tab title. */
const headings = () =>
  page.evaluate(() => [document.getElementById('subtitle')!.textContent, document.getElementById('heatmap-title')!.textContent, document.title]);

const options = () => page.$$eval('#lens option', (os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent]));

test('the picker offers the kinds the model serves; each kind shows what Query.lens computes for it', async () => {
  expect(await options()).toEqual([
    ['LOGIT', 'logit'],
    ['TUNED', 'tuned'],
    ['JACOBIAN', 'Jacobian'],
  ]);
  expect(await page.locator('#lens').isDisabled()).toBe(false);
  await page.fill('#prompt', PROMPT);
  await page.fill('#topk', '3');
  const shownTop1: Record<string, string[]> = {};
  let runs = 0;
  const names = { LOGIT: ['logit lens', 'Logit lens'], TUNED: ['tuned lens', 'Tuned lens'], JACOBIAN: ['Jacobian lens', 'Jacobian lens'] };
  for (const kind of ['LOGIT', 'TUNED', 'JACOBIAN'] as const) {
    await page.selectOption('#lens', kind);
    expect(await runAndWait(page, ++runs)).toBe('done');
    // The headings name the kind the grid shows.
    const [name, Name] = names[kind];
    expect(await headings()).toEqual([name, `${Name}: top-1 prediction per layer and position`, `lensgate · ${name}`]);
    const hash = await page.evaluate(() => location.hash);
    if (kind === 'LOGIT') expect(hash).not.toContain('lens=');
    else expect(hash).toContain(`lens=${kind}`);
    const expected = (await http(gw.url, LensCellsDocument, { input: { model: 'tiny-facts-gpt2', prompt: PROMPT, topK: 3, lens: kind }, k: 1 })).data!.lens;
    const shown = await page.$$eval('#heatmap td', (tds) =>
      tds.map((td) => ({ layer: Number(td.dataset.layer), pos: Number(td.dataset.pos), token: td.dataset.token ?? '', pending: td.classList.contains('pending') })),
    );
    expect(shown).toHaveLength(model.info.numLayers * model.tokenize(PROMPT).length);
    for (const c of shown) {
      expect(c.pending).toBe(false);
      expect(c.token, `${kind} layer ${c.layer} position ${c.pos}`).toBe(expected.cells[expected.layers.indexOf(c.layer)][c.pos].token);
    }
    shownTop1[kind] = shown.map((c) => c.token);
    if (process.env.LENSGATE_SCREENSHOTS) await page.screenshot({ path: `${DOCS}viewer-lens-${kind.toLowerCase()}.png` });
  }
  // Picking another kind does not rename what is still shown: the headings follow the grid, not the form.
  await page.selectOption('#lens', 'LOGIT');
  expect((await headings())[0]).toBe('Jacobian lens');
  // The kinds really read the layers differently (the last layer, the model's own output, is the same).
  expect(shownTop1.TUNED).not.toEqual(shownTop1.LOGIT);
  expect(shownTop1.JACOBIAN).not.toEqual(shownTop1.LOGIT);
  expect(pageErrors).toEqual([]);
});

test('a model without lenses offers only the logit lens; the choice comes back with the URL', async () => {
  await page.selectOption('#model', 'gpt2-tiny');
  expect(await options()).toEqual([['LOGIT', 'logit']]);
  expect(await page.locator('#lens').isDisabled()).toBe(true);
  await page.selectOption('#model', 'tiny-facts-gpt2');
  expect(await page.locator('#lens').isDisabled()).toBe(false);
  expect((await options()).map(([v]) => v)).toEqual(['LOGIT', 'TUNED', 'JACOBIAN']);

  // A fragment-only navigation does not reload the page: load it afresh from the shared link.
  await page.goto(`${new URL(gw.url).origin}/#autorun=0&model=tiny-facts-gpt2&lens=JACOBIAN`);
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.state === 'idle', undefined, { timeout: 60_000 });
  expect(await page.locator('#lens').inputValue()).toBe('JACOBIAN');
  expect(pageErrors).toEqual([]);
});
