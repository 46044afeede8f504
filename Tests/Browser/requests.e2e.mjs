// The Requests view in headless Chromium (Debian's /usr/bin/chromium via playwright-core), driven by the keyboard
// where a user would. Started by Tests/Browser/RequestsBrowserTests.fs, which runs the platform with a team (Alpha,
// Beta) whose agents raised requests — and an approval of spec §7.2 — over HTTP with their workspace tokens:
//
//   node requests.e2e.mjs <config.json>
//   config: {url, token, alpha: {id, token}, beta: {id, token}, approvalId, taskId, relayId, loopId, gateId, screenshots}
//
// Lines on stdout: `STEP …` per check, then `OK`, or `FAIL: <reason>`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { step, fail, expectShown, expectText, runInChromium } from './e2e.mjs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { url, token, alpha, beta, approvalId, taskId, relayId, loopId, gateId } = cfg;
const shots = cfg.screenshots;

/** POST /workspaces/:id/<what> with the agent's own workspace token → the new id (`field` of the 201 answer). */
async function post(ws, what, body, field) {
  const resp = await fetch(`${url}/workspaces/${ws.id}/${what}`, {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + ws.token, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await resp.text();
  if (resp.status !== 201) fail(`POST ${what} → HTTP ${resp.status}: ${text}`);
  return JSON.parse(text)[field];
}

/** A request an agent raises; an approval (spec §7.2) an agent asks for. */
const raise = (ws, body) => post(ws, 'requests', body, 'request_id');
const askApproval = (ws, body) => post(ws, 'approvals', body, 'approval_id');

await runInChromium('requests', shots, async ({ page }) => {
  const item = (id) => page.locator(`#request-list [role="option"][data-id="${id}"]`);

  await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
  await expectShown('the live event stream', page.locator('#connection[data-state="live"]'));
  // four of the five wait for the user (the permission prompt has expired); the approval counts too
  await expectText('the count in the top bar', page.locator('#requests-badge'), /^4$/);
  step('the top bar counts the requests waiting for the user');

  // 1. Alt+R opens the view; the open ones are listed, the expired permission prompt only under its filter
  await page.keyboard.press('Alt+r');
  await expectShown('the Requests view', page.locator('#requests-view:not([hidden])'));
  for (const id of [approvalId, taskId, loopId, 'approval:' + gateId]) await expectShown('an open request ' + id, item(id));
  if (await item(relayId).count()) fail('an expired request is listed among the open ones');
  await expectText('the counts in the header', page.locator('#requests-counts'), /4 pending · 1 expired/);
  step('Alt+R opens the Requests view: the open requests, counts by status in its header');

  // 2. by keyboard: focus the list, move to the approval, Enter opens its thread; Tab to Approve, Enter
  await item(approvalId).click();
  await expectText('the approval\'s thread', page.locator('#thread-title'), /Deploy v2\?/);
  await expectText('its detail', page.locator('#thread-detail'), /blue-green/);
  await page.screenshot({ path: join(shots, 'requests-thread.png') });
  await item(approvalId).focus();
  await page.keyboard.press('Enter');
  try {
    await page.waitForFunction(() => document.activeElement && document.activeElement.id === 'request-thread', null, { timeout: 5000 });
  } catch (_) { fail('Enter on a request did not move into its thread'); }
  await page.locator('#thread-actions button[data-action="approved"]').focus();
  await page.keyboard.press('Enter');
  await expectText('the answer confirmed', page.locator('#thread-status-text'), /Approve: answered/);
  // the open filter drops it; "all" shows it approved
  await expectShown('the approval gone from the open list', item(approvalId), { state: 'detached' });
  await page.locator('#requests-status').selectOption('');
  await expectText('the approval, approved', item(approvalId).locator('.badge'), /approved/);
  await page.locator('#requests-status').selectOption('open');
  step('keyboard: Enter opens a thread, Approve answered the approval; it leaves the open list');

  // 2b. an approval of spec §7.2 is in the same inbox, marked as one; by keyboard: Enter opens it, Deny decides it
  const gate = item('approval:' + gateId);
  await expectText('the approval marked', gate.locator('.chip'), /^approval$/);
  if ((await gate.getAttribute('data-type')) !== 'approval') fail('the approval item is not marked data-type="approval"');
  await gate.focus();
  await page.keyboard.press('Enter');
  await expectText('its thread', page.locator('#thread-title'), /Approval: Drop the staging database/);
  await expectText('its reason and context', page.locator('#thread-detail'), /clean slate[\s\S]*migration/);
  await expectText('who asked', page.locator('#thread-meta'), /approval asked by Alpha/);
  if (await page.locator('#thread-ask:not([hidden])').count()) fail('an approval offers "ask for details"');
  await page.screenshot({ path: join(shots, 'requests-approval.png') });
  await page.locator('#thread-actions button[data-action="denied"]', { hasText: 'Deny' }).focus();
  await page.keyboard.press('Enter');
  await expectText('the decision confirmed', page.locator('#thread-status-text'), /Deny: answered/);
  await expectShown('the approval gone from the open list', gate, { state: 'detached' });
  await expectText('the header counts it', page.locator('#requests-counts'), /1 denied/);
  await page.locator('#requests-status').selectOption('denied');
  await expectText('the approval, denied', gate.locator('.badge'), /denied/);
  await expectText('decided by the user', page.locator('#thread-meta'), /decided by you/);
  await page.locator('#requests-status').selectOption('open');
  step('approvals: marked in the same inbox; Enter opens one, Deny decided it as the user; the counts and filter follow');

  // 3. ask for details on the task: arrow keys to it, Enter, type, Enter sends
  await item(taskId).click();
  await expectText('the task\'s thread', page.locator('#thread-title'), /Rotate the keys/);
  await page.locator('#thread-input').focus();
  await page.keyboard.type('Which keys, and by when?');
  await page.keyboard.press('Enter');
  await expectText('the question in the thread', page.locator('#thread-messages .bubble-user .bubble-text'), /Which keys, and by when\?/);
  await expectText('the task now asks for details', item(taskId).locator('.badge'), /asking for details/);
  step('ask for details: the question is in the thread, the task reads "asking for details"');

  // 4. live: an agent raises a request while the view is open; it appears without a reload
  const live = await raise(beta, { kind: 'approval', recipient_type: 'user', title: 'Merge the hotfix?' });
  await expectShown('the new request, live', item(live));
  await expectText('the top bar count, live', page.locator('#requests-badge'), /^3$/);
  // arrow keys move through the list
  await item(live).focus();
  await page.keyboard.press('End');
  await page.keyboard.press('Home');
  const first = await page.evaluate(() => document.activeElement && document.activeElement.dataset.id);
  if (!first) fail('Home did not focus a request');
  step('live: a request raised over HTTP appears at once; Home/End move through the list');

  // 4b. live: an agent asks for an approval while the view is open; it appears and counts at once; Approve decides it
  const liveGate = await askApproval(beta, { action: 'Restart the worker pool', reason: 'memory leak' });
  await expectShown('the new approval, live', item('approval:' + liveGate));
  await expectText('the top bar counts it, live', page.locator('#requests-badge'), /^4$/);
  await item('approval:' + liveGate).click();
  await expectText('its thread', page.locator('#thread-title'), /Approval: Restart the worker pool/);
  await page.locator('#thread-actions button[data-action="approved"]', { hasText: 'Approve' }).click();
  await expectText('approved', page.locator('#thread-status-text'), /Approve: answered/);
  await expectText('the top bar, after the decision', page.locator('#requests-badge'), /^3$/);
  step('live: an approval asked for over HTTP appears at once and is counted; Approve decided it');

  // 5. the loop guard's paused pair: Resume
  await item(loopId).click();
  await expectText('the paused pair', item(loopId).locator('.chip'), /paused pair/);
  await expectShown('Keep paused', page.locator('#thread-actions button[data-action="rejected"]', { hasText: 'Keep paused' }));
  await page.screenshot({ path: join(shots, 'requests-loop-guard.png') });
  await page.locator('#thread-actions button[data-action="approved"]', { hasText: 'Resume' }).click();
  await expectText('resumed', page.locator('#thread-status-text'), /Resume: answered/);
  step('loop guard: listed as a paused pair with Resume / Keep paused; Resume answered it');

  // 6. the expired permission prompt: tool and preview, "expired", no answer offered
  await page.locator('#requests-status').selectOption('expired');
  await item(relayId).click();
  await expectText('the tool', page.locator('#thread-title'), /Tool permission: Bash/);
  await expectText('the preview', page.locator('#thread-detail'), /rm -rf build/);
  await expectText('expired', page.locator('#thread-status .badge'), /expired/);
  if (await page.locator('#thread-actions:not([hidden])').count()) fail('an expired permission prompt offers answers');
  await expectText('why', page.locator('#thread-note'), /Expired/);
  await page.screenshot({ path: join(shots, 'requests-expired.png') });
  // one that expires while it is on screen turns "expired" without a reload, its answers withdrawn
  await page.locator('#requests-status').selectOption('open');
  const soon = new Date(Date.now() + 4000).toISOString().replace(/\.\d+Z$/, 'Z');
  const expiring = await raise(alpha, { kind: 'approval', recipient_type: 'user', title: 'Edit', detail: 'src/app.ts: +3 -1',
    source: 'permission_relay', expires_at: soon });
  await item(expiring).click();
  await expectShown('its answers while open', page.locator('#thread-actions:not([hidden]) button[data-action="approved"]'));
  await expectText('expired on screen', page.locator('#thread-status .badge'), /expired/, 12000);
  await expectShown('its answers withdrawn', page.locator('#thread-actions'), { state: 'hidden' });
  step('permission relay: tool and preview shown, "expired" (also turning so on screen), no answer offered');

  // 7. filter by workspace: only Beta's
  await page.locator('#requests-status').selectOption('');
  await page.locator('#requests-workspace').selectOption(beta.id);
  await expectShown('Beta\'s task', item(taskId));
  if (await item(approvalId).count()) fail('the workspace filter kept Alpha\'s request');
  await page.screenshot({ path: join(shots, 'requests-filtered.png') });
  step('the workspace filter keeps one workspace\'s requests');

  // 8. 420 px wide: one column, nothing wider than the screen
  await page.setViewportSize({ width: 420, height: 900 });
  await item(taskId).click();
  await expectText('the thread at 420 px', page.locator('#thread-title'), /Rotate the keys/);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  if (wide > 420) fail('the Requests view is ' + wide + ' px wide at 420 px');
  await page.screenshot({ path: join(shots, 'requests-420.png'), fullPage: true });
  step('420 px: the Requests view in one column, no horizontal scrolling');
});
