// The activity feed: one line per event, labelled by the platform (names, not ids; GET /admin/feed and the `feed`
// entry of each live event), merged by key (a delegation's rows are one line), filtered by workspace, kind and text.
import { state, $, el, clear, api, on, fmtTime, nameOf } from './core.js';

const FEED_MAX = 300;
const KIND_LABELS = { chat: 'chat', message: 'message', delegation: 'delegation', memory: 'memory', report: 'report', status: 'status' };
const entries = new Map(); // key → entry
let timer = null;

function filters() {
  return { workspace: $('feed-workspace').value, kind: $('feed-kind').value, q: $('feed-query').value.trim().toLowerCase() };
}

/** The platform's Feed.matches, for entries that arrive live. */
function matches(f, e) {
  if (f.workspace && e.actor_id !== f.workspace && e.target_id !== f.workspace && e.workspace_id !== f.workspace) return false;
  if (f.kind && e.kind !== f.kind) return false;
  if (f.q && ![e.text, e.detail, e.result].some((s) => typeof s === 'string' && s.toLowerCase().includes(f.q))) return false;
  return true;
}

/** Later parts of an event complete its entry (the platform's Feed.combine). */
function combine(first, later) {
  const pick = (a, b) => (b ? b : a);
  return Object.assign({}, first, {
    seq: Math.max(first.seq || 0, later.seq || 0),
    detail: pick(later.detail, first.detail),
    result: pick(first.result, later.result),
    status: pick(first.status, later.status),
    target_id: first.target_id || later.target_id,
  });
}

function item(e) {
  const li = el('li', 'feed-item');
  li.dataset.kind = e.kind;
  li.dataset.key = e.key;
  if (e.status) li.dataset.status = e.status;
  const head = el('div', 'feed-head');
  head.appendChild(el('span', 'feed-kind', KIND_LABELS[e.kind] || e.kind));
  const t = el('time', 'feed-time', fmtTime(e.at));
  if (e.at) t.dateTime = e.at;
  if (e.status && e.status !== 'ok' && e.kind !== 'status') head.appendChild(el('span', 'feed-status', e.status));
  head.appendChild(t);
  li.appendChild(head);
  li.appendChild(el('div', 'feed-text', e.text));
  if (e.detail) li.appendChild(el('div', 'feed-detail', e.detail));
  if (e.result) li.appendChild(el('div', 'feed-result', '→ ' + e.result));
  return li;
}

function render() {
  const list = $('activity');
  const f = filters();
  const shown = Array.from(entries.values()).filter((e) => matches(f, e))
    .sort((a, b) => String(b.at).localeCompare(String(a.at)) || (b.seq || 0) - (a.seq || 0))
    .slice(0, FEED_MAX);
  clear(list);
  shown.forEach((e) => list.appendChild(item(e)));
  $('feed-empty').hidden = shown.length > 0;
}

/** A live entry (from an event's `feed`): merged into the line of its key. */
export function addEntry(e) {
  if (!e || typeof e.key !== 'string' || !e.key) return;
  const old = entries.get(e.key);
  entries.set(e.key, old ? combine(old, e) : e);
  if (entries.size > FEED_MAX * 2) {
    const oldest = Array.from(entries.values()).sort((a, b) => String(a.at).localeCompare(String(b.at)));
    oldest.slice(0, entries.size - FEED_MAX).forEach((x) => entries.delete(x.key));
  }
  render();
}

/** Loads the newest entries for the current filters from the platform. */
export async function loadFeed() {
  const f = filters();
  const params = new URLSearchParams({ limit: '200' });
  if (f.workspace) params.set('workspace_id', f.workspace);
  if (f.kind) params.set('kind', f.kind);
  if (f.q) params.set('q', f.q);
  try {
    const answer = await api('GET', '/admin/feed?' + params.toString());
    const fresh = answer && Array.isArray(answer.entries) ? answer.entries : [];
    // status lines exist only live; keep the ones seen so far
    Array.from(entries.values()).filter((e) => e.kind !== 'status').forEach((e) => entries.delete(e.key));
    fresh.forEach((e) => entries.set(e.key, e));
    render();
  } catch (_) { /* a 401 signs out; anything else: the next event catches up */ }
}

/** The workspace filter's options follow the team. */
export function renderFeedFilters() {
  const select = $('feed-workspace');
  const current = select.value;
  clear(select);
  const all = el('option', null, 'All workspaces');
  all.value = '';
  select.appendChild(all);
  Array.from(state.workspaces.values()).forEach((w) => {
    const o = el('option', null, nameOf(w.id) + (w.status === 'removed' ? ' (removed)' : ''));
    o.value = w.id;
    select.appendChild(o);
  });
  select.value = state.workspaces.has(current) ? current : '';
}

export function initFeed() {
  $('feed-workspace').addEventListener('change', loadFeed);
  $('feed-kind').addEventListener('change', loadFeed);
  $('feed-query').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(loadFeed, 300);
  });
  on('tree', renderFeedFilters);
}
