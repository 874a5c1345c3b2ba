// The viewer on a server started with --api-keys, in a real browser (Debian chromium via
// playwright-core): without a key it says the server needs one and points at the Run panel's field;
// the key typed there is sent on every request and stream (Authorization: Bearer), kept for the
// browser session and never written into the page's address; FORBIDDEN and RATE_LIMITED (with the
// seconds to wait) get their own messages. LENSGATE_SCREENSHOTS=1 also writes the docs picture.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { LensDocument } from '../../src/client/graphql.js';
import type { LensModel } from '../../src/lens/types.js';
import { ApiKeys } from '../../src/server/api-keys.js';
import { writeApiKeys, type ApiKeysFile } from '../helpers/api-keys.js';
import { http, startGateway, type Gateway } from '../server/harness.js';
import { openTinyGpt2 } from '../server/models.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));

let gw: Gateway;
let model: LensModel;
let browser: Browser;
let page: Page;
let keys: ApiKeysFile;
const pageErrors: string[] = [];
/** Authorization header of every request the page sent to /graphql, in order. */
const sent: Array<string | null> = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`viewer tests need Debian's chromium at ${CHROMIUM} (or set CHROMIUM_PATH)`);
  keys = writeApiKeys([{ name: 'alice' }, { name: 'bob' }, { name: 'slow', requestsPerMinute: 3 }]);
  model = await openTinyGpt2();
  gw = await startGateway([model], { apiKeys: ApiKeys.load(keys.file) });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 820 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/graphql') sent.push(r.headers().authorization ?? null);
  });
});

afterAll(async () => {
  await browser?.close();
  await gw?.stop();
  await model?.close();
  keys?.remove();
});

const origin = () => new URL(gw.url).origin;

async function settled(runs = 0): Promise<string> {
  await page.waitForFunction(
    (n) => Number(document.body.dataset.runs ?? 0) >= n && ['done', 'error', 'stopped', 'idle'].includes(document.body.dataset.state ?? ''),
    runs,
    { timeout: 60_000 },
  );
  return page.evaluate(() => document.body.dataset.state ?? '');
}

async function enterKey(key: string): Promise<void> {
  await page.fill('#api-key', key);
  await page.press('#api-key', 'Enter');
}

test('without a key the page says the server needs one and focuses the key field; a wrong key says so again', async () => {
  await page.goto(`${origin()}/`);
  expect(await settled()).toBe('error');
  expect(await page.getAttribute('#error', 'data-code')).toBe('UNAUTHENTICATED');
  expect(await page.locator('#error').textContent()).toContain('This server needs an API key');
  expect(await page.evaluate(() => document.activeElement?.id)).toBe('api-key');
  expect(await page.getAttribute('#api-key', 'aria-invalid')).toBe('true');
  if (process.env.LENSGATE_SCREENSHOTS) await page.screenshot({ path: `${DOCS}viewer-api-key.png` });

  const before = sent.length;
  await enterKey('wrong-key');
  await page.waitForFunction(() => document.body.dataset.state === 'error' && document.querySelector('#error')?.getAttribute('data-code') === 'UNAUTHENTICATED');
  expect(sent.slice(before)).toContain('Bearer wrong-key');
});

test('with a key the models load and the lens runs; the key goes with every request and stream, never into the URL', async () => {
  const before = sent.length;
  await enterKey('alice-secret');
  expect(await settled(1)).toBe('done');
  expect(await page.locator('#heatmap td').count()).toBeGreaterThan(0);
  expect(await page.isHidden('#error')).toBe(true);
  // Models query and the lens subscription (SSE) both carried it.
  const after = sent.slice(before);
  expect(after.length).toBeGreaterThanOrEqual(2);
  expect(new Set(after)).toEqual(new Set(['Bearer alice-secret']));
  expect(page.url()).toContain('result=');
  expect(page.url()).not.toContain('alice-secret');
  expect(await page.evaluate(() => sessionStorage.getItem('lensgate.apiKey'))).toBe('alice-secret');
  expect(await page.evaluate(() => localStorage.length)).toBe(0);

  // Kept for the browser session: a reload runs again with it, without typing.
  await page.reload();
  expect(await settled(1)).toBe('done');
  expect(await page.inputValue('#api-key')).toBe('alice-secret');
  expect(pageErrors).toEqual([]);
});

test("FORBIDDEN: another key's stored result; RATE_LIMITED: says when to retry", async () => {
  const made = await http(gw.url, LensDocument, { input: { model: 'gpt2-tiny', prompt: 'Only for alice' } }, { headers: { authorization: 'Bearer alice-secret' } });
  const id = made.data!.lens.id;
  await page.evaluate(() => sessionStorage.setItem('lensgate.apiKey', 'bob-secret'));
  await page.goto(`${origin()}/#result=${id}`);
  await page.reload();
  expect(await settled(1)).toBe('error');
  expect(await page.getAttribute('#error', 'data-code')).toBe('FORBIDDEN');
  expect(await page.locator('#error').textContent()).toContain('not allowed');

  // Three requests a minute: the model list and a few runs use them up.
  await page.evaluate(() => sessionStorage.setItem('lensgate.apiKey', 'slow-secret'));
  await page.goto(`${origin()}/#autorun=0`);
  await page.reload();
  expect(await settled()).toBe('idle');
  let code: string | null = null;
  for (let i = 1; i <= 4 && code !== 'RATE_LIMITED'; i++) {
    await page.click('#run');
    await settled(i);
    code = await page.getAttribute('#error', 'data-code');
  }
  expect(code).toBe('RATE_LIMITED');
  expect(await page.locator('#error').textContent()).toMatch(/over its request rate: retry in \d+ s/);
  expect(pageErrors).toEqual([]);
});
