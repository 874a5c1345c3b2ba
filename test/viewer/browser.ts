// The real browser the viewer tests drive: Debian's chromium through playwright-core, headless and
// with nothing running in the background, one page whose uncaught errors are collected, and the
// waits on the viewer's own markers (document.body.dataset.state and .runs).

import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface ViewerBrowser {
  browser: Browser;
  page: Page;
  /** Uncaught errors on `page` (a test expects none). */
  pageErrors: string[];
}

export async function launchViewerBrowser(viewport: { width: number; height: number }): Promise<ViewerBrowser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`viewer tests need Debian's chromium at ${CHROMIUM} (apt-get install chromium, as .ci/run does; or set CHROMIUM_PATH)`);
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  return { browser, page, pageErrors };
}

/** Opens the viewer at `url` (give `#autorun=0` not to run the default prompt) and waits until it is idle. */
export async function openIdle(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.waitForFunction(() => document.body.dataset.state === 'idle', undefined, { timeout: 60_000 });
}

/** Waits until run number `n` has ended (done, error or stopped) and returns that state. */
export async function waitForRun(page: Page, n: number, timeout = 60_000): Promise<string> {
  await page.waitForFunction(
    (want) => Number(document.body.dataset.runs) >= want && ['done', 'error', 'stopped'].includes(document.body.dataset.state ?? ''),
    n,
    { timeout },
  );
  return page.evaluate(() => document.body.dataset.state ?? '');
}

/** Clicks Run and waits for that run (number `n`) to end. */
export async function runAndWait(page: Page, n: number): Promise<string> {
  await page.click('#run');
  return waitForRun(page, n);
}
