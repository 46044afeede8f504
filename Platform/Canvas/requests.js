// The Requests view: every request of the team (GET /admin/inbox), counts in the top bar and the view's header,
// filters by status and workspace, a thread per request, and the user's answers — approve / reject / done, "ask for
// details" (a message from the user) — through the console's own routes (/admin/inbox/…, actor "user"). Tool
// permission prompts relayed from Claude Code (source permission_relay) show the tool and its preview and read
// "expired" past expires_at; loop-guard requests are paused agent pairs with Resume / Keep paused. Approvals (spec
// §7.2, approvals.js) are items of the same list, decided with Approve / Deny. Kept live by the REQUEST_* and
// APPROVAL_* events (live.js calls requestsChanged).
import { state, $, el, clear, api, emit, on, nameOf, fmtTime } from './core.js';
import {
  APPROVAL_LABELS, isApproval, loadApprovals, approvalAnswers, decideApproval, approvalMeta, approvalNote,
} from './approvals.js';

const OPEN = ['pending', 'info_requested'];
const STATUS_LABELS = {
  pending: 'pending', info_requested: 'asking for details', approved: 'approved', rejected: 'rejected',
  done: 'done', cancelled: 'cancelled', expired: 'expired', ...APPROVAL_LABELS,
};
const STATUS_ORDER = ['pending', 'info_requested', 'approved', 'done', 'rejected', 'denied', 'cancelled', 'withdrawn', 'expired'];

const view = { requests: [], selected: null, thread: null, open: false, timer: null, busy: false };

/** The status a request reads now: an open one past its expires_at is expired (the platform's statusAt). */
export function statusNow(r) {
  if (OPEN.includes(r.status) && r.expires_at && Date.parse(r.expires_at) <= Date.now()) return 'expired';
  return r.status;
}

const isOpen = (r) => OPEN.includes(statusNow(r));
const forUser = (r) => r.recipient_type === 'user';
const partyName = (type, id) => (type === 'user' ? 'you' : nameOf(id));

function counts(list) {
  const c = {};
  STATUS_ORDER.forEach((s) => { c[s] = 0; });
  list.forEach((r) => { const s = statusNow(r); c[s] = (c[s] || 0) + 1; });
  return c;
}

function concerns(r, ws) {
  return !ws || r.requester_id === ws || r.recipient_id === ws;
}

function filtered() {
  const status = $('requests-status').value;
  const ws = $('requests-workspace').value;
  return view.requests.filter((r) => concerns(r, ws)
    && (!status || (status === 'open' ? isOpen(r) : statusNow(r) === status)));
}

// ------------------------------------------------------------------ the top bar and the header

function renderCounts() {
  const all = counts(view.requests);
  const waiting = view.requests.filter((r) => isOpen(r) && forUser(r)).length;
  const b = $('requests-badge');
  b.textContent = String(waiting);
  b.dataset.count = String(waiting);
  $('requests-open').setAttribute('aria-label', `Requests: ${waiting} waiting for you`);
  const mine = counts(view.requests.filter((r) => concerns(r, $('requests-workspace').value)));
  const parts = STATUS_ORDER.filter((s) => mine[s] > 0).map((s) => `${mine[s]} ${STATUS_LABELS[s]}`);
  $('requests-counts').textContent = parts.length ? parts.join(' · ') : 'No requests yet.';
  $('requests-counts').dataset.total = String(Object.values(all).reduce((a, n) => a + n, 0));
}

function renderWorkspaceFilter() {
  const select = $('requests-workspace');
  const chosen = select.value;
  while (select.options.length > 1) select.remove(1);
  Array.from(state.workspaces.values())
    .sort((a, b) => nameOf(a.id).localeCompare(nameOf(b.id)))
    .forEach((w) => {
      const o = el('option', null, nameOf(w.id));
      o.value = w.id;
      select.appendChild(o);
    });
  select.value = chosen && state.workspaces.has(chosen) ? chosen : '';
}

// ------------------------------------------------------------------ the list

function statusBadge(status) {
  const b = el('span', 'badge', STATUS_LABELS[status] || status);
  b.dataset.status = 'request-' + status;
  return b;
}

function sourceChip(r) {
  if (isApproval(r)) return el('span', 'chip chip-approval', 'approval');
  if (r.source === 'permission_relay') return el('span', 'chip chip-permission', 'tool permission');
  if (r.source === 'loop_guard') return el('span', 'chip chip-paused', 'paused pair');
  return el('span', 'chip', r.kind);
}

function who(r) {
  const from = partyName(r.requester_type, r.requester_id);
  if (r.source === 'loop_guard') return `paused: ${from} and its peer`;
  return `${from} → ${partyName(r.recipient_type, r.recipient_id)}`;
}

function listItem(r) {
  const li = el('li', 'request-item');
  li.setAttribute('role', 'option');
  li.dataset.id = r.id;
  li.dataset.status = statusNow(r);
  li.dataset.source = r.source;
  li.dataset.type = isApproval(r) ? 'approval' : 'request';
  li.setAttribute('aria-selected', String(r.id === view.selected));
  li.tabIndex = r.id === view.selected ? 0 : -1;
  const head = el('div', 'feed-head');
  head.appendChild(el('span', 'request-who', who(r)));
  const t = el('time', 'feed-time', fmtTime(r.created_at));
  t.dateTime = r.created_at;
  head.appendChild(t);
  li.appendChild(head);
  li.appendChild(el('div', 'request-title', r.title));
  const line = el('div', 'delegation-line');
  line.appendChild(statusBadge(statusNow(r)));
  line.appendChild(sourceChip(r));
  if (r.priority && r.priority !== 'normal') line.appendChild(el('span', 'chip', r.priority + ' priority'));
  li.appendChild(line);
  li.addEventListener('click', () => choose(r.id, false));
  return li;
}

function renderList() {
  const list = $('request-list');
  const shown = filtered();
  if (!view.selected && shown.length) view.selected = shown[0].id;
  const hadFocus = list.contains(document.activeElement);
  clear(list);
  shown.forEach((r) => list.appendChild(listItem(r)));
  if (!list.querySelector('[tabindex="0"]') && list.firstChild) list.firstChild.tabIndex = 0;
  $('requests-empty').hidden = shown.length > 0;
  if (hadFocus) {
    const again = list.querySelector('[aria-selected="true"]') || list.firstChild;
    if (again) again.focus();
  }
}

/** Arrow keys, Home and End move through the list (each opens its thread); Enter moves into the thread. */
function listKeys(ev) {
  const items = Array.from($('request-list').querySelectorAll('[role="option"]'));
  const i = items.indexOf(document.activeElement);
  if (i < 0) return;
  let next = null;
  if (ev.key === 'ArrowDown') next = items[Math.min(i + 1, items.length - 1)];
  else if (ev.key === 'ArrowUp') next = items[Math.max(i - 1, 0)];
  else if (ev.key === 'Home') next = items[0];
  else if (ev.key === 'End') next = items[items.length - 1];
  else if (ev.key === 'Enter' || ev.key === ' ') {
    ev.preventDefault();
    choose(items[i].dataset.id, true);
    return;
  }
  if (next) {
    ev.preventDefault();
    choose(next.dataset.id, false);
    next.focus();
  }
}

// ------------------------------------------------------------------ the thread

function answers(r) {
  if (isApproval(r)) return approvalAnswers();
  if (r.source === 'loop_guard') return [['approved', 'Resume'], ['rejected', 'Keep paused']];
  if (r.kind === 'approval') return [['approved', 'Approve'], ['rejected', 'Reject']];
  return [['done', 'Done'], ['rejected', 'Reject']];
}

function metaLine(r) {
  if (isApproval(r)) return approvalMeta(r, fmtTime);
  const parts = [`${r.kind} from ${partyName(r.requester_type, r.requester_id)}`,
    `to ${partyName(r.recipient_type, r.recipient_id)}`, `asked ${fmtTime(r.created_at)}`];
  if (r.expires_at) parts.push((statusNow(r) === 'expired' ? 'expired ' : 'expires ') + fmtTime(r.expires_at));
  if (r.responder_type) parts.push(`answered by ${partyName(r.responder_type, r.responder_id)}`);
  return parts.join(' · ');
}

function renderMessages(messages) {
  const list = $('thread-messages');
  clear(list);
  messages.forEach((m) => {
    const li = el('li', 'bubble ' + (m.author_type === 'user' ? 'bubble-user' : 'bubble-agent'));
    const head = el('div', 'bubble-head');
    head.appendChild(el('span', 'bubble-who', partyName(m.author_type, m.author_id)));
    head.appendChild(el('time', null, fmtTime(m.created_at)));
    li.appendChild(head);
    li.appendChild(el('div', 'bubble-text', m.body));
    list.appendChild(li);
  });
  list.hidden = messages.length === 0;
}

function renderActions(r) {
  const box = $('thread-actions');
  clear(box);
  const answerable = forUser(r) && isOpen(r);
  answers(r).forEach(([action, label]) => {
    const b = el('button', action === 'rejected' || action === 'denied' ? 'danger small' : 'primary small', label);
    b.type = 'button';
    b.dataset.action = action;
    b.addEventListener('click', () => respond(r.id, action, label));
    box.appendChild(b);
  });
  box.hidden = !answerable;
  $('thread-ask').hidden = !answerable || isApproval(r);
  const note = $('thread-note');
  if (forUser(r) && statusNow(r) === 'expired') note.textContent = r.source === 'permission_relay'
    ? 'Expired: the agent\'s terminal has moved on; an answer now would not reach it.'
    : 'Expired: it can no longer be answered.';
  else if (!forUser(r)) note.textContent = `Addressed to ${partyName(r.recipient_type, r.recipient_id)}: only that agent answers it.`;
  else if (!answerable) note.textContent = `This ${isApproval(r) ? 'approval' : 'request'} is ${STATUS_LABELS[statusNow(r)] || statusNow(r)}.`;
  else if (isApproval(r)) note.textContent = approvalNote(r);
  else if (r.source === 'loop_guard') note.textContent = 'Resume lets the pair exchange messages again; Keep paused leaves their messages waiting in the inbox.';
  else if (r.source === 'permission_relay') note.textContent = 'Approve allows this tool call once; Reject denies it.';
  else note.textContent = '';
}

function renderThread() {
  const box = $('request-thread');
  const r = view.thread && view.thread.request;
  box.hidden = !r;
  if (!r) return;
  box.dataset.id = r.id;
  box.dataset.status = statusNow(r);
  box.dataset.type = isApproval(r) ? 'approval' : 'request';
  $('thread-title').textContent = r.source === 'permission_relay' ? 'Tool permission: ' + r.title
    : (isApproval(r) ? 'Approval: ' + r.title : r.title);
  const status = $('thread-status');
  clear(status);
  status.appendChild(statusBadge(statusNow(r)));
  $('thread-meta').textContent = metaLine(r);
  const detail = $('thread-detail');
  detail.textContent = r.detail || '';
  detail.hidden = !r.detail;
  detail.setAttribute('aria-label', r.source === 'permission_relay' ? 'What the tool would do' : 'Detail');
  renderMessages(Array.isArray(view.thread.messages) ? view.thread.messages : []);
  renderActions(r);
}

async function loadThread() {
  const id = view.selected;
  if (!id) { view.thread = null; renderThread(); return; }
  const item = view.requests.find((r) => r.id === id);
  if (item && isApproval(item)) { view.thread = { request: item, messages: [] }; renderThread(); return; }
  try {
    const t = await api('GET', '/admin/inbox/' + encodeURIComponent(id));
    if (view.selected === id) { view.thread = t; renderThread(); }
  } catch (e) {
    $('thread-error').textContent = e.message;
  }
}

/** Opens a request's thread; `focus` moves the keyboard into it. */
async function choose(id, focus) {
  if (view.selected !== id) $('thread-status-text').textContent = '';
  view.selected = id;
  $('thread-error').textContent = '';
  $('request-list').querySelectorAll('[role="option"]').forEach((li) => {
    const on = li.dataset.id === id;
    li.setAttribute('aria-selected', String(on));
    li.tabIndex = on ? 0 : -1;
  });
  const cached = view.requests.find((r) => r.id === id);
  if (cached && (!view.thread || view.thread.request.id !== id)) { view.thread = { request: cached, messages: [] }; renderThread(); }
  await loadThread();
  if (focus) $('request-thread').focus();
}

async function respond(id, action, label) {
  if (view.busy) return;
  view.busy = true;
  $('thread-error').textContent = '';
  try {
    const item = view.requests.find((r) => r.id === id);
    if (item && isApproval(item)) await decideApproval(item, action);
    else await api('POST', '/admin/inbox/' + encodeURIComponent(id) + '/respond', { action });
    $('thread-status-text').textContent = `${label}: answered.`;
  } catch (e) {
    $('thread-error').textContent = `Not answered: ${e.message}`;
  } finally {
    view.busy = false;
  }
  await reload();
  $('request-thread').focus();
}

async function ask(ev) {
  ev.preventDefault();
  const input = $('thread-input');
  const body = input.value.trim();
  if (!body || !view.selected) return;
  $('thread-error').textContent = '';
  try {
    await api('POST', '/admin/inbox/' + encodeURIComponent(view.selected) + '/messages', { body });
    input.value = '';
    $('thread-status-text').textContent = 'Asked for details.';
  } catch (e) {
    $('thread-error').textContent = `Not sent: ${e.message}`;
  }
  await reload();
}

// ------------------------------------------------------------------ loading, opening, live updates

/** Re-reads every request (the counts in the top bar always; the list and thread when the view is open). */
export async function reload() {
  try {
    const answer = await api('GET', '/admin/inbox');
    const requests = answer && Array.isArray(answer.requests) ? answer.requests : [];
    const approvals = await loadApprovals();
    view.requests = requests.concat(approvals).sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  } catch (_) { return; /* a 401 signs out; the next event catches up */ }
  renderCounts();
  if (!view.open) return;
  if (view.selected && !view.requests.some((r) => r.id === view.selected)) view.selected = null;
  renderList();
  await loadThread();
}

/** Several request events in a row reload once. */
export function requestsChanged() {
  clearTimeout(view.timer);
  view.timer = setTimeout(reload, 150);
}

/** Shows the Requests view in the main panel (instead of a workspace). */
export function openRequests() {
  view.open = true;
  state.selected = null;
  emit('tree');
  if (window.location.hash !== '#requests') history.replaceState(null, '', '#requests');
  $('chat-placeholder').hidden = true;
  $('workspace').hidden = true;
  $('requests-view').hidden = false;
  $('requests-open').setAttribute('aria-pressed', 'true');
  renderWorkspaceFilter();
  reload();
  $('requests-view').focus();
}

function closeRequests() {
  view.open = false;
  $('requests-view').hidden = true;
  $('requests-open').setAttribute('aria-pressed', 'false');
}

/** The one-second tick: a request passing its expires_at reads expired at once. */
export function tickRequests() {
  const passed = view.requests.some((r) => OPEN.includes(r.status) && r.expires_at && Date.parse(r.expires_at) <= Date.now()
    && !view.expired.has(r.id));
  if (!passed) return;
  view.requests.forEach((r) => { if (statusNow(r) === 'expired') view.expired.add(r.id); });
  renderCounts();
  if (view.open) { renderList(); renderThread(); }
}

export function initRequests() {
  view.expired = new Set();
  $('requests-open').addEventListener('click', openRequests);
  $('requests-status').addEventListener('change', () => { renderCounts(); renderList(); });
  $('requests-workspace').addEventListener('change', () => { renderCounts(); renderList(); });
  $('request-list').addEventListener('keydown', listKeys);
  $('thread-ask').addEventListener('submit', ask);
  $('thread-input').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey) { ev.preventDefault(); $('thread-ask').requestSubmit(); }
  });
  $('request-thread').addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') {
      const item = $('request-list').querySelector('[aria-selected="true"]');
      if (item) item.focus();
    }
  });
  on('select', closeRequests);
  on('changed', () => { if (view.open) { renderWorkspaceFilter(); renderList(); } });
}
