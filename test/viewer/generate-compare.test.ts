// The viewer's generation control and comparison mode in a real browser (Debian chromium via
// playwright-core) against a live gateway on the embedded trained model: the heatmap grows one column
// per written token while the run streams, and the comparison grid shows what Query.lensCompare
// computes. LENSGATE_SCREENSHOTS=1 also writes the docs pictures.

import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensCellsDocument, LensCompareDocument } from '../../src/client/graphql.js';
import { type LensModel, openModel } from '../../src/lens/index.js';
import { http, startGateway, type Gateway } from '../server/harness.js';
import { launchViewerBrowser, openIdle, runAndWait } from './browser.js';

const MODEL_DIR = fileURLToPath(new URL('../../models/tiny-facts-gpt2', import.meta.url));
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));

let gw: Gateway;
let model: LensModel;
let browser: Browser;
let page: Page;
let pageErrors: string[];

beforeAll(async () => {
  model = await openModel(MODEL_DIR, { id: 'tiny-facts-gpt2', device: 'cpu' });
  gw = await startGateway([model]);
  ({ browser, page, pageErrors } = await launchViewerBrowser({ width: 1280, height: 820 }));
  await openIdle(page, `${new URL(gw.url).origin}/#autorun=0`);
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await model?.close();
});

test('generate: columns grow live, one per written token, and equal Query.lens with generate', async () => {
  const prompt = 'The capital of France is';
  await page.fill('#prompt', prompt);
  await page.fill('#topk', '3');
  await page.fill('#generate', '5');
  // Record the column count every time the grid is redrawn during the run.
  await page.evaluate(() => {
    const w = window as unknown as { seen: number[]; titles: string[] };
    w.seen = [];
    w.titles = [];
    new MutationObserver(() => {
      w.seen.push(document.querySelectorAll('#heatmap tfoot th').length - 1);
      w.titles.push(document.getElementById('subtitle')!.textContent ?? '');
    }).observe(document.getElementById('heatmap-wrap')!, { childList: true });
  });
  expect(await runAndWait(page, 1)).toBe('done');
  const promptLen = model.tokenize(prompt).length;
  const seen = await page.evaluate(() => (window as unknown as { seen: number[] }).seen);
  expect([...new Set(seen)]).toEqual([promptLen, promptLen + 1, promptLen + 2, promptLen + 3, promptLen + 4, promptLen + 5]);
  // The headings count the written positions as the columns grow.
  const titles = await page.evaluate(() => (window as unknown as { titles: string[] }).titles);
  expect([...new Set(titles)]).toEqual([
    'logit lens · prompt + up to 5 generated tokens',
    'logit lens · prompt + 1 generated token',
    ...[2, 3, 4, 5].map((n) => `logit lens · prompt + ${n} generated tokens`),
  ]);
  expect(await page.textContent('#heatmap-title')).toBe('Logit lens: top-1 prediction per layer and position (prompt + 5 generated tokens)');
  expect(await page.title()).toBe('lensgate · logit lens · prompt + 5 generated tokens');

  const input = { model: 'tiny-facts-gpt2', prompt, topK: 3, generate: { maxNewTokens: 5 } };
  const expected = (await http(gw.url, LensCellsDocument, { input, k: 1 })).data!.lens;
  const shown = await page.$$eval('#heatmap td', (tds) =>
    tds.map((td) => ({ layer: Number(td.dataset.layer), pos: Number(td.dataset.pos), token: td.dataset.token, pending: td.classList.contains('pending') })),
  );
  expect(shown).toHaveLength(model.info.numLayers * (promptLen + 5));
  for (const c of shown) {
    expect(c.pending).toBe(false);
    expect(c.token, `layer ${c.layer} position ${c.pos}`).toBe(expected.cells[expected.layers.indexOf(c.layer)][c.pos].token);
  }
  expect(await page.locator('#heatmap tfoot .tok.generated').count()).toBe(5);
  expect(await page.locator('#status').textContent()).toContain('5 written');
  if (process.env.LENSGATE_SCREENSHOTS) await page.screenshot({ path: `${DOCS}viewer-generate.png`, fullPage: true });
  expect(pageErrors).toEqual([]);
});

test('compare: the grid shows Query.lensCompare — JS colour per cell, frames where top-1 differs', async () => {
  await page.fill('#generate', '0');
  await page.check('#compare');
  expect(await page.locator('#compare-row').isVisible()).toBe(true);
  await page.fill('#prompt', 'The capital of France is');
  await page.fill('#prompt-b', 'The capital of Japan is');
  expect(await runAndWait(page, 2)).toBe('done');
  const expected = (
    await http(gw.url, LensCompareDocument, {
      a: { model: 'tiny-facts-gpt2', prompt: 'The capital of France is', topK: 3 },
      b: { model: 'tiny-facts-gpt2', prompt: 'The capital of Japan is', topK: 3 },
    })
  ).data!.lensCompare;
  const cells = await page.$$eval('#compare td', (tds) =>
    tds.map((td) => ({ li: Number(td.dataset.layer), p: Number(td.dataset.pos), differs: td.classList.contains('differs'), title: td.getAttribute('title') ?? '' })),
  );
  expect(cells).toHaveLength(expected.layersA.length * expected.positions);
  for (const c of cells) {
    expect(c.differs).toBe(expected.top1Differs[c.li][c.p]);
    expect(c.title).toContain(`JS ${expected.js[c.li][c.p].toFixed(4)}`);
  }
  expect(cells.some((c) => c.differs)).toBe(true);
  expect(await page.locator('#legend').textContent()).toContain('JS divergence');
  expect(await page.textContent('#subtitle')).toBe('comparison · logit lens');
  expect(await page.textContent('#heatmap-title')).toBe('Comparison (logit lens): JS divergence and top-1 of a and b per layer and aligned position');
  expect(await page.title()).toBe('lensgate · comparison · logit lens');
  if (process.env.LENSGATE_SCREENSHOTS) await page.screenshot({ path: `${DOCS}viewer-compare.png`, fullPage: true });
  expect(pageErrors).toEqual([]);
  await page.uncheck('#compare');
});
