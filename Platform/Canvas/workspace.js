// The selected workspace: its header (name, status, liveness), the tabs (Chat, Details, Tokens, Memories) and the
// Details tab — facts (last seen, uptime, delivery state, tokens), the edit form and the way to delete it.
import {
  state, $, el, clear, badge, skillsOf, isSilent, livenessText, fmtTime, fmtSpan, nameOf, api, emit, on,
  tablistKeys, showTab,
} from './core.js';
import { loadHistory, renderComposer } from './chat.js';

let current = 'chat';

export function renderHeader() {
  const ws = state.workspaces.get(state.selected);
  if (!ws) return;
  $('chat-name').textContent = ws.name || nameOf(ws.id);
  $('chat-meta').textContent = [ws.role, 'id ' + ws.id, ws.delivery_mode ? ws.delivery_mode + ' mode' : null].filter(Boolean).join(' · ');
  badge(ws.status, $('chat-status'), isSilent(ws));
  $('ws-liveness').textContent = ws.status === 'removed' ? 'removed' : livenessText(ws);
  const skills = $('chat-skills');
  clear(skills);
  skillsOf(ws).forEach((s) => skills.appendChild(el('li', 'chip', s)));
  skills.hidden = !skills.firstChild;
  renderComposer(ws);
  $('delete-workspace').disabled = ws.status === 'removed';
  if (current === 'details') renderDetails();
}

/** The once-a-second update: status badge, "seen … ago" and the Details facts; nothing the user may be using. */
export function tickHeader() {
  const ws = state.workspaces.get(state.selected);
  if (!ws) return;
  badge(ws.status, $('chat-status'), isSilent(ws));
  $('ws-liveness').textContent = ws.status === 'removed' ? 'removed' : livenessText(ws);
  if (current === 'details') renderDetails();
}

function fact(list, term, value, testid) {
  list.appendChild(el('dt', null, term));
  const dd = el('dd', null, value);
  if (testid) dd.dataset.testid = testid;
  list.appendChild(dd);
}

function deliveryText(d) {
  if (!d || typeof d.inbound !== 'number') return '—';
  if (d.inbound === 0) return 'no messages yet';
  const acked = d.acked_seq === null || d.acked_seq === undefined
    ? 'none acknowledged yet'
    : `${d.acknowledged} acknowledged by the agent`;
  return `${d.inbound} received · ${d.queued} queued on the platform · ${acked}`;
}

/** The Details tab's facts (kept fresh by events and the one-second tick). */
export function renderDetails() {
  const ws = state.workspaces.get(state.selected);
  const list = $('ws-facts');
  if (!ws || !list) return;
  clear(list);
  fact(list, 'Status', ws.status === 'removed' ? 'removed' : (isSilent(ws) ? `${ws.status}, silent` : ws.status), 'fact-status');
  fact(list, 'Last seen', ws.status === 'removed' ? '—' : livenessText(ws), 'fact-seen');
  fact(list, 'Uptime', typeof ws.uptime_seconds === 'number' && ws.last_heartbeat_at
    ? fmtSpan(ws.uptime_seconds) + ' (at the last heartbeat)' : '—', 'fact-uptime');
  fact(list, 'Delivery', deliveryText(ws.delivery), 'fact-delivery');
  fact(list, 'Live tokens', typeof ws.live_tokens === 'number' ? String(ws.live_tokens) : '—', 'fact-tokens');
  fact(list, 'Parent', ws.parent_id ? nameOf(ws.parent_id) : '— (a root workspace)');
  fact(list, 'Created', fmtTime(ws.created_at));
  fact(list, 'Workspace ID', ws.id);
}

function fillForm() {
  const ws = state.workspaces.get(state.selected);
  if (!ws) return;
  $('edit-name').value = ws.name || '';
  $('edit-role').value = ws.role || '';
  $('edit-skills').value = skillsOf(ws).join(', ');
  $('edit-description').value = (ws.agent_card && typeof ws.agent_card.description === 'string') ? ws.agent_card.description : '';
  $('edit-status').textContent = '';
  const removed = ws.status === 'removed';
  $('edit-form').querySelectorAll('input, textarea, button').forEach((c) => { c.disabled = removed; });
}

async function saveEdit(ev) {
  ev.preventDefault();
  const id = state.selected;
  const status = $('edit-status');
  const body = {
    name: $('edit-name').value.trim(),
    role: $('edit-role').value.trim(),
    skills: $('edit-skills').value.split(',').map((s) => s.trim()).filter(Boolean),
    description: $('edit-description').value.trim(),
  };
  status.textContent = 'Saving…';
  try {
    const saved = await api('PATCH', `/workspaces/${encodeURIComponent(id)}`, body);
    emit('workspace', saved);
    status.textContent = 'Saved.';
  } catch (e) {
    status.textContent = 'Not saved: ' + e.message;
  }
}

/** Shows one of the workspace tabs. */
export function openTab(name) {
  current = name;
  showTab($('ws-tabs'), name);
  if (name === 'details') { renderDetails(); fillForm(); }
  emit('tab', name);
}

/** Selects a workspace: header, unread count, the chat history; keeps the open tab. */
export async function select(id) {
  if (!state.workspaces.has(id)) return;
  const changed = state.selected !== id;
  state.selected = id;
  state.unread.delete(id);
  if (window.location.hash !== '#ws=' + id) history.replaceState(null, '', '#ws=' + id);
  emit('tree');
  $('chat-placeholder').hidden = true;
  $('workspace').hidden = false;
  renderHeader();
  if (changed) {
    openTab(current);
    await loadHistory();
  }
}

export function initWorkspace() {
  $('ws-tabs').querySelectorAll('[role="tab"]').forEach((t) => t.addEventListener('click', () => openTab(t.dataset.tab)));
  tablistKeys($('ws-tabs'), openTab);
  $('edit-form').addEventListener('submit', saveEdit);
  $('delete-workspace').addEventListener('click', () => emit('delete', state.selected));
  on('select', (id) => { select(id); });
}
