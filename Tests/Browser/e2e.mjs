// What the console's browser scripts share (console.e2e.mjs, requests.e2e.mjs): the STEP/FAIL lines the xunit tests
// read, waits that fail with what was expected, and one run of headless Chromium (Debian's /usr/bin/chromium via
// playwright-core) in a fresh profile, with every page error, console error and HTTP error collected.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** Headless Chromium's switches for a test run (no sandbox, GPU, QUIC, first-run or background traffic). */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function step(s) { console.log('STEP ' + s); }
export function fail(reason) { const e = new Error(reason); e.expected = true; throw e; }

/** Waits for a locator; on timeout fails with what was expected instead of Playwright's generic message. */
export async function expectShown(what, locator, options) {
  try { await locator.waitFor(options); } catch (e) { fail(`${what} (${e.message.split('\n')[0]})`); }
}

/** Waits until the locator's first text matches. */
export async function expectText(what, locator, pattern, timeout = 15000) {
  const until = Date.now() + timeout;
  let last = '';
  while (Date.now() < until) {
    last = (await locator.count()) ? await locator.first().textContent() : '';
    if (pattern.test(last || '')) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`${what}: ${JSON.stringify(last)} does not match ${pattern}`);
}

/**
 * Runs `body({browser, page, problems})` in headless Chromium (1360×860), then prints `OK` — or `FAIL: <reason>`
 * (with the page's problems and a screenshot `<name>-failed.png` in `shots`) — closes the browser, removes the
 * profile and exits with 0 or 1. `body` may call `fail`. Exits 3 without Chromium.
 */
export async function runInChromium(name, shots, body) {
  if (!existsSync(CHROMIUM)) {
    console.log(`FAIL: ${CHROMIUM} not found; install it with: apt-get update && apt-get install -y chromium`);
    process.exit(3);
  }
  mkdirSync(shots, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), name + '-chromium-'));
  const problems = [];
  let browser;
  let page;
  let code = 0;
  try {
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1360, height: 860 },
    });
    page = browser.pages()[0] || await browser.newPage();
    page.setDefaultTimeout(15000);
    page.on('pageerror', (e) => problems.push('page error: ' + e.message));
    page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push('console error: ' + m.text()); });
    page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${new URL(r.url()).pathname}`); });
    await body({ browser, page, problems });
    if (problems.length) fail(problems.join('; '));
    console.log('OK');
  } catch (e) {
    code = 1;
    console.log('FAIL: ' + (e && e.message ? e.message.split('\n')[0] : String(e)));
    if (problems.length) console.log('page problems: ' + problems.join('; '));
    if (page) {
      try { await page.screenshot({ path: join(shots, name + '-failed.png'), fullPage: true }); } catch (_) { /* ignore */ }
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
  process.exit(code);
}
