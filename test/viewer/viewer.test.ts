// The web viewer in a real browser (Debian chromium via playwright-core) against a live gateway on a
// real tiny checkpoint: the heatmap must show exactly what Query.lens computes, hover and pins must
// work, and a bad input must show the server's error code.

import { readFileSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensAttentionDocument, LensCellsDocument } from '../../src/client/graphql.js';
import type { LensModel } from '../../src/lens/types.js';
import { http, instrument, startGateway, type Gateway } from '../server/harness.js';
import { openDeepGpt2, openTinyGpt2 } from '../server/models.js';
import { launchViewerBrowser, waitForRun as waitForRunOn } from './browser.js';

let gw: Gateway;
let model: LensModel;
let browser: Browser;
let page: Page;
let pageErrors: string[];

beforeAll(async () => {
  model = await openTinyGpt2();
  gw = await startGateway([model]);
  ({ browser, page, pageErrors } = await launchViewerBrowser({ width: 1280, height: 900 }));
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await model?.close();
});

const origin = () => new URL(gw.url).origin;

/** Waits until run number `n` has finished (the page auto-runs its default prompt as run 1). */
const waitForRun = (n: number) => waitForRunOn(page, n, 30_000);

test('the gateway serves the page and its assets itself (no CDN), with revalidation', async () => {
  const page = await fetch(`${origin()}/`);
  expect(page.status).toBe(200);
  expect(page.headers.get('content-type')).toContain('text/html');
  const html = await page.text();
  for (const src of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
    expect(src[1], 'every asset is local').toMatch(/^\//);
  }
  const js = await fetch(`${origin()}/viewer/app.js`);
  expect(js.headers.get('content-type')).toContain('javascript');
  expect((await js.text()).length).toBeGreaterThan(1000);
  const again = await fetch(`${origin()}/viewer/app.js`, { headers: { 'if-none-match': js.headers.get('etag')! } });
  expect(again.status).toBe(304);
  // Everything else still reaches GraphQL.
  expect((await fetch(`${origin()}/graphql?query=%7B__typename%7D`)).status).toBe(200);
});

test('the page loads, lists the model and runs the default prompt by itself', async () => {
  await page.goto(`${origin()}/`);
  expect(await waitForRun(1)).toBe('done');
  expect(await page.locator('#model option').allTextContents()).toEqual(['gpt2-tiny']);
  await expect.poll(() => page.locator('#model-info').textContent()).toContain('3 layers');
  expect(await page.locator('#timings').textContent()).toContain('server total');
  expect(pageErrors).toEqual([]);
});

test('the heatmap holds numLayers × numTokens cells whose top-1 equals Query.lens', async () => {
  const prompt = 'The quick brown fox jumps';
  await page.fill('#prompt', prompt);
  await page.fill('#topk', '4');
  await page.click('#run');
  expect(await waitForRun(2)).toBe('done');

  const expected = await http(gw.url, LensCellsDocument, { input: { model: 'gpt2-tiny', prompt, topK: 4 }, k: 1 });
  const { layers, cells } = expected.data!.lens;
  const numTokens = cells[0].length;
  expect(numTokens).toBe(model.tokenize(prompt).length);

  // Cells are filled only from the streamed LayerResult events (LensCompleted carries no top-k).
  const shown = await page.$$eval('#heatmap td', (tds) =>
    tds.map((td) => ({
      layer: Number(td.dataset.layer),
      pos: Number(td.dataset.pos),
      point: td.dataset.point,
      token: td.dataset.token,
      pending: td.classList.contains('pending'),
    })),
  );
  expect(shown).toHaveLength(model.info.numLayers * numTokens);
  expect(shown.every((c) => !c.pending && c.point === 'BLOCK_OUTPUT')).toBe(true);
  // Last layer on top.
  expect(shown[0].layer).toBe(model.info.numLayers - 1);
  expect(shown[shown.length - 1].layer).toBe(0);
  for (const c of shown) {
    expect(c.token, `layer ${c.layer} position ${c.pos}`).toBe(cells[layers.indexOf(c.layer)][c.pos].token);
  }
  expect(await page.locator('#heatmap tfoot th').count()).toBe(numTokens + 1);
});

test('hovering a cell shows its top-k; clicking pins trajectories; the keyboard works too', async () => {
  const cell = page.locator('#heatmap td[data-layer="1"][data-pos="2"]');
  await cell.hover();
  await expect.poll(() => page.locator('#tooltip').isVisible()).toBe(true);
  expect(await page.locator('#tooltip li').count()).toBe(4);
  expect(await page.locator('#tooltip').textContent()).toContain('layer 1');

  await cell.click();
  await page.locator('#heatmap td[data-layer="2"][data-pos="4"]').click();
  expect(await page.locator('#pins li.pin').count()).toBe(2);
  // One point per layer for each pinned token (trajectories were requested, so none is missing).
  expect(await page.locator('#chart svg circle').count()).toBe(2 * model.info.numLayers);
  const pinned = await page.locator('#pins li.pin').first().getAttribute('data-token-id');
  expect(await cell.getAttribute('data-token-id')).toBe(pinned);

  // Clicking a pinned cell again unpins it; Enter on a focused cell pins; arrows move the focus.
  await cell.click();
  expect(await page.locator('#pins li.pin').count()).toBe(1);
  await page.keyboard.press('ArrowUp');
  expect(await page.evaluate(() => (document.activeElement as HTMLElement).dataset.layer)).toBe('2');
  await page.keyboard.press('Enter');
  expect(await page.locator('#pins li.pin').count()).toBe(2);
});

test('stats colour modes recolour the cells and the legend', async () => {
  const before = await page.locator('#heatmap td').first().evaluate((td) => (td as HTMLElement).style.background);
  await page.selectOption('#color', 'rank');
  expect(await page.locator('#legend').textContent()).toContain('rank of the final top-1');
  // The last layer's top-1 is its own final top-1: rank 0, the darkest colour of the rank ramp.
  const top = await page.locator('#heatmap td').first().evaluate((td) => (td as HTMLElement).style.background);
  expect(top).not.toBe(before);
  expect(top).toBe('rgb(127, 66, 12)');
  await page.selectOption('#color', 'prob');
});

test('a layer subset (negative = from the end) with the attention sub-layer adds one row per read', async () => {
  const prompt = 'Hello there';
  await page.fill('#prompt', prompt);
  await page.fill('#layers', '0, -1');
  await page.check('#attn');
  await page.click('#run');
  expect(await waitForRun(3)).toBe('done');
  const rows = await page.locator('#heatmap tbody th').allTextContents();
  expect(rows).toEqual(['L2', '2 attn', 'L0', '0 attn']);

  const input = { model: 'gpt2-tiny', prompt, topK: 4, layers: [0, 2], points: ['BLOCK_OUTPUT' as const, 'ATTENTION_OUTPUT' as const] };
  const expected = (await http(gw.url, LensAttentionDocument, { input })).data!.lens;
  const shown = await page.$$eval('#heatmap td', (tds) =>
    tds.map((td) => ({ layer: Number(td.dataset.layer), pos: Number(td.dataset.pos), point: td.dataset.point, id: Number(td.dataset.tokenId) })),
  );
  expect(shown).toHaveLength(4 * model.tokenize(prompt).length);
  for (const c of shown) {
    const li = c.layer === 0 ? 0 : 1;
    const want = c.point === 'ATTENTION_OUTPUT' ? expected.attention!.topIndices[li][c.pos][0] : expected.topIndices[li][c.pos][0];
    expect(c.id, `${c.point} layer ${c.layer} position ${c.pos}`).toBe(want);
  }
  // Attention reads have stats of their own, so every cell takes a colour in the stats modes.
  expect(await page.isChecked('#stats')).toBe(true);
  await page.selectOption('#color', 'entropy');
  expect(await page.locator('#heatmap td').count()).toBe(4 * model.tokenize(prompt).length);
  expect(await page.locator('#heatmap td.nostat').count()).toBe(0);
  await page.selectOption('#color', 'prob');
  await page.fill('#layers', '');
  await page.uncheck('#attn');
});

test('an invalid input (topK 0) shows the error code inline', async () => {
  await page.fill('#topk', '0');
  await page.click('#run');
  expect(await waitForRun(4)).toBe('error');
  const error = page.locator('#error');
  expect(await error.isVisible()).toBe(true);
  expect(await error.getAttribute('data-code')).toBe('BAD_USER_INPUT');
  expect(await error.textContent()).toMatch(/BAD_USER_INPUT.*topK/);
  // The last good heatmap stays on screen.
  expect(await page.locator('#heatmap td').count()).toBeGreaterThan(0);
  expect(pageErrors).toEqual([]);
});

test('under --trusted-only the viewer still works: it sends the persisted document hashes', async () => {
  const documents = new Map(
    Object.entries(JSON.parse(readFileSync('src/client/persisted-documents.json', 'utf8')) as Record<string, string>),
  );
  const trusted = await startGateway([model], { trustedDocuments: { documents, allowArbitraryDocuments: false } });
  const p = await browser.newPage();
  try {
    await p.goto(`${new URL(trusted.url).origin}/`);
    await p.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state ?? ''), null, { timeout: 30_000 });
    expect(await p.locator('#error').textContent()).toBe('');
    expect(await p.evaluate(() => document.body.dataset.state)).toBe('done');
    expect(await p.locator('#heatmap td:not(.pending)').count()).toBeGreaterThan(0);
  } finally {
    await p.close();
    await trusted.stop();
  }
});

test('rows appear while later layers are still running, and Stop cancels the rest', async () => {
  // 24 layers stretched to ~5 s (the real CPU lens takes ~0.1 s) so a half-filled heatmap can be seen
  // and Stop is still enabled when the click lands (at 40 ms a layer a loaded CI finished the run
  // between seeing the first row and the click).
  const deep = await openDeepGpt2();
  const gw2 = await startGateway([instrument(deep, { layerDelayMs: 200 }).model]);
  const p = await browser.newPage();
  try {
    await p.goto(`${new URL(gw2.url).origin}/#autorun=0&stats=0`);
    await p.waitForFunction(() => document.body.dataset.state === 'idle');
    await p.fill('#prompt', 'one two three four five six seven eight nine ten eleven twelve '.repeat(4));
    await p.click('#run');
    await p.waitForFunction(
      () => document.body.dataset.state === 'running' && document.querySelectorAll('#heatmap td:not(.pending)').length > 0,
      null,
      { timeout: 30_000, polling: 5 },
    );
    await p.click('#stop');
    await p.waitForFunction(() => document.body.dataset.state === 'stopped', null, { timeout: 10_000 });
    const filled = await p.locator('#heatmap td:not(.pending)').count();
    const all = await p.locator('#heatmap td').count();
    expect(filled).toBeGreaterThan(0);
    expect(filled).toBeLessThan(all);
    expect(await p.locator('#status').textContent()).toMatch(/^Stopped after \d+ of 24 layer reads/);
  } finally {
    await p.close();
    await gw2.stop();
    await deep.close();
  }
});
