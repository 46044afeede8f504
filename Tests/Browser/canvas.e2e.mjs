// Drives the platform's canvas page in headless Chromium (Debian's /usr/bin/chromium via playwright-core).
// Started by Tests/Browser/CanvasBrowserTests.fs, which runs the platform and a real molecule-mcp agent:
//
//   node canvas.e2e.mjs <platformUrl> <adminToken> <workspaceId> <userText> <replyText> <attachmentName> <screenshot.png>
//
// Steps (each prints a `STEP …` line; the xunit test reads them):
//   1. open <url>/#token=… ; the token leaves the address bar; the workspace shows in the tree with a badge
//   2. a workspace created meanwhile through the admin API appears in the tree under its parent (no reload);
//      its badge follows register (online) and delete (removed) live
//   3. select the workspace, type <userText>, press Enter; the user bubble is confirmed by the activity log
//      → prints `SENT` (the test then waits for the agent's channel notification and answers)
//   4. the agent's reply <replyText> appears as an agent bubble with the attachment link (no reload)
//   5. a tab without the token shows the login form; a wrong token is refused, the admin token connects
//   6. markup in messages is shown as text; screenshot saved to <screenshot.png>
// Exit code 0 and a last line `OK` on success; `FAIL: <reason>` and exit code 1 otherwise.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHROMIUM_ARGS } from './e2e.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const [url, token, wsId, userText, replyText, attachmentName, screenshot] = process.argv.slice(2);
const REPLY_TIMEOUT_MS = Number(process.env.CANVAS_REPLY_TIMEOUT_MS || 60000);

function step(s) { console.log('STEP ' + s); }
function fail(reason) { const e = new Error(reason); e.expected = true; throw e; }
/** Waits for a locator; on timeout fails with what was expected instead of Playwright's generic message. */
async function expectShown(what, locator, options) {
  try { await locator.waitFor(options); } catch (e) { fail(`${what} (${e.message.split('\n')[0]})`); }
}

if (!url || !token || !wsId || !userText || !replyText || !attachmentName || !screenshot) {
  console.log('FAIL: usage: node canvas.e2e.mjs <url> <adminToken> <workspaceId> <userText> <replyText> <attachmentName> <screenshot.png>');
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.log(`FAIL: ${CHROMIUM} not found; install it with: apt-get update && apt-get install -y chromium`);
  process.exit(3);
}

async function admin(method, path, body) {
  const resp = await fetch(url + path, {
    method,
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) fail(`${method} ${path} → HTTP ${resp.status}: ${text}`);
  return JSON.parse(text);
}

const profile = mkdtempSync(join(tmpdir(), 'canvas-chromium-'));
let browser;
let page;
const problems = [];
let code = 0;

try {
  // a fresh profile (--user-data-dir) per run: Playwright passes it for a persistent context
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    // CANVAS_VIEWPORT=WxH and CANVAS_COLOR_SCHEME=dark are for looking at other layouts by hand
    viewport: (() => {
      const m = /^(\d+)x(\d+)$/.exec(process.env.CANVAS_VIEWPORT || '');
      return m ? { width: Number(m[1]), height: Number(m[2]) } : { width: 1360, height: 820 };
    })(),
    colorScheme: process.env.CANVAS_COLOR_SCHEME === 'dark' ? 'dark' : 'light',
  });
  page = browser.pages()[0] || await browser.newPage();
  page.setDefaultTimeout(15000);
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push('console error: ' + m.text()); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${new URL(r.url()).pathname}`); });
  // the token never travels in a URL path or query (the SSE stream opens with a one-time ticket)
  page.on('request', (r) => {
    const u = new URL(r.url());
    if ((u.pathname + u.search).includes(token)) problems.push('token leaked in URL: ' + u.pathname);
  });

  // 1. open with the token in the fragment
  await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
  const node = page.locator(`[role="treeitem"][data-id="${wsId}"]`);
  await expectShown('the workspace in the team tree', node);
  if ((await page.evaluate(() => window.location.href)).includes(token)) fail('the admin token stayed in the address bar');
  const badgeText = (await node.locator('.badge').first().textContent()).trim();
  if (!badgeText) fail('the workspace has no status badge');
  await expectShown('the live event stream indicator', page.locator('#connection[data-state="live"]'));
  step(`tree shows the workspace (status "${badgeText}") and the event stream is live`);

  // 2. a new workspace appears by itself, under its parent, with its skills
  const child = await admin('POST', '/workspaces', { name: 'Canvas child <i>', parent_id: wsId, skills: ['review', 'docs'] });
  const childNode = page.locator(`[role="treeitem"][data-id="${wsId}"] + .tree-group [role="treeitem"][data-id="${child.id}"]`);
  await expectShown('the new workspace under its parent without a reload', childNode);
  const chips = await childNode.locator('.chip').allTextContents();
  if (!chips.includes('review') || !chips.includes('docs')) fail('skills chips missing on the new workspace: ' + JSON.stringify(chips));
  if ((await childNode.locator('.node-name').textContent()) !== 'Canvas child <i>') fail('workspace name not shown verbatim');
  if (await childNode.locator('i').count()) fail('markup in a workspace name was rendered as HTML');
  step('a workspace created through the admin API appeared under its parent with skills chips');

  // status changes arrive live: the child's agent registers (→ online), then the admin removes it (→ removed)
  const childBadge = childNode.locator('.badge');
  const before = (await childBadge.textContent()).trim();
  const reg = await fetch(url + '/registry/register', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + child.auth_token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ id: child.id, agent_card: { name: 'Canvas child' }, delivery_mode: 'poll' }),
  });
  if (!reg.ok) fail('register the child: HTTP ' + reg.status + ' ' + (await reg.text()));
  await expectShown('the online badge after register', page.locator(`[role="treeitem"][data-id="${child.id}"] .badge[data-status="online"]`));
  await admin('DELETE', `/workspaces/${child.id}?confirm=true`);
  await expectShown('the removed badge after delete', page.locator(`[role="treeitem"][data-id="${child.id}"].is-removed .badge[data-status="removed"]`));
  step(`status badges follow the platform live: "${before}" → "online" → "removed"`);

  // 3. select the workspace and send a message
  await node.click();
  await expectShown('the chat panel', page.locator('#chat:not([hidden])'));
  await page.locator('#message-input').fill(userText);
  await page.locator('#message-input').press('Enter');
  const userBubble = page.locator('[data-testid="user-bubble"][data-activity-id]').filter({ hasText: userText });
  await expectShown('the user bubble confirmed by the activity log', userBubble);
  if ((await userBubble.locator('.bubble-text').textContent()) !== userText) fail('the user bubble does not show the text verbatim');
  step('user message sent from the page and confirmed by the activity log');
  console.log('SENT');

  // 4. the agent's reply appears by itself
  const agentBubble = page.locator('[data-testid="agent-bubble"]').filter({ hasText: replyText });
  await expectShown("the agent's reply as an agent bubble", agentBubble, { timeout: REPLY_TIMEOUT_MS });
  if ((await agentBubble.locator('.bubble-text').textContent()) !== replyText) fail('the agent bubble does not show the reply verbatim');
  const link = agentBubble.locator('a.attachment-link');
  if ((await link.count()) !== 1) fail('the agent bubble has no attachment link');
  if ((await link.textContent()) !== attachmentName) fail('attachment link text: ' + (await link.textContent()));
  const href = await link.getAttribute('href');
  if (!new RegExp(`/workspaces/${wsId}/chat/uploads/[^/]+$`).test(new URL(href, url).pathname)) fail('attachment link does not point at the upload route: ' + href);
  // the link downloads the file with the admin bearer (a plain link could not carry it)
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  if (download.suggestedFilename() !== attachmentName) fail('downloaded file name: ' + download.suggestedFilename());
  const got = readFileSync(await download.path(), 'utf8');
  const expected = process.env.CANVAS_ATTACHMENT_TEXT;
  if (expected !== undefined ? got !== expected : got.length === 0) fail('downloaded attachment content: ' + JSON.stringify(got));
  step('agent reply appeared as an agent bubble with its attachment, which downloads; no reload');

  // 5. without a token the page asks for one; a wrong token is refused, the right one connects
  const fresh = await browser.newPage();
  fresh.on('pageerror', (e) => problems.push('page error (login tab): ' + e.message));
  await fresh.goto(url + '/');
  await fresh.locator('#login:not([hidden]) #token-input').waitFor();
  await fresh.locator('#token-input').fill('not-the-admin-token');
  await fresh.locator('#token-input').press('Enter');
  await fresh.locator('#login-error').filter({ hasText: 'rejected' }).waitFor();
  await fresh.locator('#token-input').fill(token);
  await fresh.getByRole('button', { name: 'Connect' }).click();
  await fresh.locator(`[role="treeitem"][data-id="${wsId}"]`).waitFor();
  if (!(await fresh.locator('#login').isHidden())) fail('the login form stayed visible after a valid token');
  await fresh.close();
  step('without a token the page shows the login form; a wrong token is refused, the admin token connects');

  // 6. markup stays text; the feed has the conversation; screenshot
  const injected = await page.locator('.bubble-text *, .feed-text *, .node-name *').count();
  if (injected) fail(`${injected} element(s) were created from message text`);
  await expectShown('the reply in the activity feed', page.locator('#activity .feed-item').filter({ hasText: replyText }).first());
  const online = (await page.locator('#chat-status').textContent()).trim();
  step(`activity feed shows the reply; chat header status "${online}"`);
  if (problems.length) fail(problems.join('; '));
  await page.screenshot({ path: screenshot, fullPage: true });
  step('screenshot ' + screenshot);
  console.log('OK');
} catch (e) {
  code = 1;
  console.log('FAIL: ' + (e && e.message ? e.message.split('\n')[0] : String(e)));
  if (problems.length) console.log('page problems: ' + problems.join('; '));
  if (page) {
    try { await page.screenshot({ path: screenshot.replace(/\.png$/, '') + '.failed.png', fullPage: true }); } catch (_) { /* ignore */ }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(code);
