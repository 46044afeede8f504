// The console screens in headless Chromium (Debian's /usr/bin/chromium via playwright-core), clicked through by
// keyboard and mouse. Started by Tests/Browser/ConsoleBrowserTests.fs, which runs the platform with a small team
// (Lead → Researcher, a delegation, memories) and starts a real molecule-mcp from the line this script copies:
//
//   node console.e2e.mjs <config.json>      config: {url, token, leadId, researcherId, screenshots}
//
// Lines on stdout: `STEP …` per screen, `COPIED <base64 of the copied JSON config>` (the test starts molecule-mcp
// with it), `DELETED <workspace id>` (the test asks that agent for its 410 message), then `OK`, or `FAIL: <reason>`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { step, fail, expectShown, expectText, runInChromium } from './e2e.mjs';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { url, token, leadId, researcherId } = cfg;
const shots = cfg.screenshots;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

async function admin(method, path, body) {
  const resp = await fetch(url + path, {
    method,
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) fail(`${method} ${path} → HTTP ${resp.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

await runInChromium('console', shots, async ({ browser, page }) => {
  await browser.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });

  await page.goto(`${url}/#token=${encodeURIComponent(token)}`);
  const lead = page.locator(`[role="treeitem"][data-id="${leadId}"]`);
  await expectShown('the team tree', lead);
  await expectShown('the live event stream', page.locator('#connection[data-state="live"]'));

  // 1. create a workspace in the dialog, by keyboard: name, role, parent, skills, description
  await page.locator('#new-workspace').focus();
  await page.keyboard.press('Enter');
  await expectShown('the create dialog', page.locator('#create-dialog[open]'));
  await page.keyboard.type('Canvas Agent');
  await page.locator('#create-role').fill('writer');
  await page.locator('#create-parent').selectOption(leadId);
  await page.locator('#create-skills').fill('docs, review');
  await page.locator('#create-description').fill('Writes what the team found.');
  await page.screenshot({ path: join(shots, 'console-create.png') });
  await page.getByRole('button', { name: 'Create', exact: true }).click();
  await expectShown('the once-shown token after create', page.locator('#create-result [data-testid="once-token"]'));
  const createdToken = await page.locator('#create-result [data-testid="once-token"]').inputValue();
  if (createdToken.length !== 43) fail('the created token is not shown: ' + createdToken);
  for (const key of ['claude', 'hermes', 'json']) await expectShown('the ' + key + ' line', page.locator(`#create-result [data-testid="snippet-${key}"]`));
  await page.locator('#create-done').click();
  if (await page.locator('#create-dialog[open]').count()) fail('the dialog stayed open');
  if (await page.locator('#create-result *').count()) fail('the created token stayed in the page after the dialog closed');
  const agentNode = page.locator(`[role="treeitem"][data-id="${leadId}"] + .tree-group [role="treeitem"]`).filter({ hasText: 'Canvas Agent' });
  await expectShown('the new workspace under Lead', agentNode);
  const agentId = await agentNode.getAttribute('data-id');
  step('created "Canvas Agent" under Lead in the dialog; its token and three connection lines were shown once');

  // the tree: aria-expanded, collapse and expand by keyboard
  await lead.focus();
  if ((await lead.getAttribute('aria-expanded')) !== 'true') fail('Lead is not aria-expanded="true"');
  await page.keyboard.press('ArrowLeft');
  await expectShown('Lead collapsed', page.locator(`[role="treeitem"][data-id="${leadId}"][aria-expanded="false"]`));
  if (await agentNode.isVisible()) fail('a collapsed node still shows its children');
  await page.keyboard.press('ArrowRight');
  await expectShown('Lead expanded', page.locator(`[role="treeitem"][data-id="${leadId}"][aria-expanded="true"]`));
  await page.keyboard.press('ArrowDown');
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.dataset.id);
  if (!focused || focused === leadId) fail('ArrowDown did not move to the next workspace');
  step('the tree collapses and expands with ArrowLeft/ArrowRight (aria-expanded) and moves with ArrowDown');

  // a child of the new workspace, so that deleting it needs the cascade confirmation
  const helper = await admin('POST', '/workspaces', { name: 'Canvas Helper', parent_id: agentId });

  // 2. the Tokens tab: mint (shown once), copy the JSON line, revoke the token made at creation
  await agentNode.click();
  await page.locator('#tab-chat').focus();
  await page.keyboard.press('ArrowRight'); // Details
  await page.keyboard.press('ArrowRight'); // Tokens
  await expectShown('the Tokens tab', page.locator('#tokens:not([hidden])'));
  if ((await page.locator('#tab-tokens').getAttribute('aria-selected')) !== 'true') fail('the Tokens tab is not aria-selected');
  await expectText('one token listed', page.locator('#token-list'), /…/);
  await page.locator('#mint-token').click();
  await expectShown('the minted token', page.locator('#mint-result [data-testid="once-token"]'));
  await expectText('two tokens listed', page.locator('#token-list'), /…[\s\S]*…/);
  await page.locator('#mint-result [data-testid="copy-json"]').click();
  await expectText('the copy confirmation', page.locator('#mint-result [data-testid="copy-json"]'), /Copied/);
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  const shown = await page.locator('#mint-result [data-testid="snippet-json"] pre').textContent();
  if (copied !== shown) fail('the clipboard does not hold the shown JSON line');
  const parsed = JSON.parse(copied);
  const server = Object.values(parsed.mcpServers)[0];
  if (server.env.WORKSPACE_ID !== agentId || server.env.PLATFORM_URL !== url) fail('the copied line does not name this workspace and platform');
  await page.screenshot({ path: join(shots, 'console-tokens.png') });
  const older = page.locator('#token-list tr').filter({ hasText: createdToken.slice(0, 8) });
  await older.getByRole('button').click();
  await older.getByRole('button', { name: /Confirm/ }).click();
  await expectShown('the revocation notice', page.locator('#tokens-status').filter({ hasText: 'revoked' }));
  await expectShown('the token list without the revoked token', older, { state: 'detached' });
  if ((await page.locator('#token-list tr').count()) !== 1) fail('the revoked token is still listed');
  console.log('COPIED ' + Buffer.from(copied, 'utf8').toString('base64'));
  step('Tokens tab: minted a token (shown once, three lines), copied the JSON line, revoked the first token');

  // 3. molecule-mcp started from the copied line: online, last seen, uptime; edit in the Details tab
  await expectShown('the agent online in the tree', page.locator(`[role="treeitem"][data-id="${agentId}"] .badge[data-status="online"]`), { timeout: 30000 });
  await page.locator('#tab-details').click();
  await expectText('last seen', page.locator('[data-testid="fact-seen"]'), /^seen \d+ s ago$/);
  await expectText('uptime', page.locator('[data-testid="fact-uptime"]'), /\d+ s \(at the last heartbeat\)/, 20000);
  await expectText('live tokens', page.locator('[data-testid="fact-tokens"]'), /^1$/);
  await admin('POST', `/workspaces/${agentId}/a2a`, { method: 'message/send', params: { message: { role: 'user', parts: [{ kind: 'text', text: 'draft the intro' }] } } });
  await expectText('delivery state', page.locator('[data-testid="fact-delivery"]'), /1 received/, 20000);
  await page.locator('#edit-role').fill('editor');
  await page.locator('#edit-skills').fill('docs, review, tests');
  await page.getByRole('button', { name: 'Save' }).click();
  await expectText('saved', page.locator('#edit-status'), /Saved/);
  await expectShown('the new skill in the tree', page.locator(`[role="treeitem"][data-id="${agentId}"] .chip`).filter({ hasText: 'tests' }));
  await page.screenshot({ path: join(shots, 'console-details.png') });
  step('Details tab: the agent started from the copied line is online, seen seconds ago, with uptime and delivery; role and skills edited');

  // 4. the Memories tab, per scope
  await page.locator('#tab-memories').click();
  await page.locator('#memory-scopes [data-tab="GLOBAL"]').click();
  await expectShown('the GLOBAL memory by Lead', page.locator('#memory-list .memory').filter({ hasText: 'the team ships on Fridays' }).filter({ hasText: 'Lead' }));
  await page.locator('#memory-scopes [data-tab="GLOBAL"]').focus();
  await page.keyboard.press('ArrowLeft'); // TEAM
  await expectShown('the TEAM memory by Researcher', page.locator('#memory-list .memory').filter({ hasText: 'sources live in /notes' }).filter({ hasText: 'Researcher' }));
  await page.locator('#memory-query').fill('nothing matches this');
  await expectShown('an empty search', page.locator('#memories-empty:not([hidden])'));
  await page.locator('#memory-query').fill('');
  await page.screenshot({ path: join(shots, 'console-memories.png') });
  step('Memories tab: GLOBAL and TEAM memories with who wrote them; search');

  // 5. the feed: names, one line per event, filters
  const feed = page.locator('#activity .feed-item');
  await expectShown('the delegation in the feed', feed.filter({ hasText: 'Lead delegated a task to Researcher' }));
  if ((await feed.filter({ hasText: 'Lead delegated a task to Researcher' }).count()) !== 1) fail('the delegation is listed more than once');
  await expectShown('the message attributed to its sender', feed.filter({ hasText: 'Researcher → Lead' }));
  await expectShown('the GLOBAL write labelled', feed.filter({ hasText: 'Lead wrote a GLOBAL memory' }));
  for (const t of await page.locator('#activity .feed-text').allTextContents()) if (UUID.test(t)) fail('a raw id in the feed: ' + t);
  await page.locator('#feed-kind').selectOption('delegation');
  await expectText('only delegations', page.locator('#activity'), /^(?![\s\S]*GLOBAL memory)[\s\S]*delegated a task[\s\S]*$/);
  await page.locator('#feed-kind').selectOption('');
  await page.locator('#feed-workspace').selectOption(researcherId);
  await expectText('Researcher only', page.locator('#activity'), /^(?![\s\S]*GLOBAL memory)[\s\S]*Researcher[\s\S]*$/);
  await page.locator('#feed-query').fill('three sources');
  await expectText('text filter', page.locator('#activity'), /^(?![\s\S]*Researcher → Lead)[\s\S]*find three sources[\s\S]*$/);
  await page.screenshot({ path: join(shots, 'console-feed.png') });
  await page.locator('#feed-query').fill('');
  await page.locator('#feed-workspace').selectOption('');
  step('feed: names not ids, one line per delegation, the sender attributed, filters by kind, workspace and text');

  // 6. the delegations view
  await page.locator('#tab-activity').focus();
  await page.keyboard.press('ArrowRight');
  await expectShown('the Delegations view', page.locator('#delegations-panel:not([hidden])'));
  const d = page.locator('#delegation-list .delegation').filter({ hasText: 'Lead → Researcher' });
  await expectShown('the delegation', d);
  await expectText('its status', d.locator('.badge'), /queued|completed/);
  await expectText('its task', d.locator('.feed-detail'), /find three sources/);
  await page.screenshot({ path: join(shots, 'console-delegations.png') });
  step('Delegations view: who asked whom, the status and the task');

  // 7. delete with the cascade confirmation
  await page.locator(`[role="treeitem"][data-id="${agentId}"]`).click();
  await page.locator('#tab-details').click();
  await page.locator('#delete-workspace').click();
  await expectShown('the delete dialog', page.locator('#delete-dialog[open]'));
  await expectText('the cascade list', page.locator('#delete-children'), /Canvas Helper/);
  await page.screenshot({ path: join(shots, 'console-delete.png') });
  await page.keyboard.press('Escape');
  if (await page.locator('#delete-dialog[open]').count()) fail('Escape did not close the dialog');
  const still = await admin('GET', `/workspaces/${agentId}`);
  if (still.status === 'removed') fail('cancelling deleted the workspace');
  await page.locator('#delete-workspace').click();
  await page.locator('#delete-dialog').getByRole('button', { name: 'Delete', exact: true }).click();
  await expectShown('removed in the tree', page.locator(`[role="treeitem"][data-id="${agentId}"].is-removed`));
  await expectShown('its child removed too', page.locator(`[role="treeitem"][data-id="${helper.id}"].is-removed`));
  console.log('DELETED ' + agentId);
  step('deleted Canvas Agent after confirming the cascade (Canvas Helper went with it); Escape cancels');

  // 8. 420 px wide: one column, nothing wider than the screen
  await page.setViewportSize({ width: 420, height: 900 });
  await page.locator(`[role="treeitem"][data-id="${researcherId}"]`).click();
  await page.locator('#tab-details').click();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  if (overflow > 420) fail('the page is ' + overflow + ' px wide at 420 px');
  await page.screenshot({ path: join(shots, 'console-420.png'), fullPage: true });
  await page.locator('#tab-tokens').click();
  await page.locator('#mint-token').click();
  await expectShown('the minted token at 420 px', page.locator('#mint-result [data-testid="once-token"]'));
  const narrow = await page.evaluate(() => document.documentElement.scrollWidth);
  if (narrow > 420) fail('the Tokens tab is ' + narrow + ' px wide at 420 px');
  await page.screenshot({ path: join(shots, 'console-420-tokens.png'), fullPage: false });
  step('420 px: one column, no horizontal scrolling (Details and a minted token)');
});
