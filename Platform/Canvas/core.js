// Shared pieces of the console: state, DOM helpers, time and name formatting, the admin HTTP client, a tiny event
// bus. Untrusted text only ever goes through textContent / attributes set by the DOM API.

export const state = {
  token: null,
  workspaces: new Map(),   // id → workspace JSON (GET /admin/workspaces or /workspaces/:id)
  selected: null,          // workspace id
  collapsed: new Set(),    // tree nodes the user collapsed
  unread: new Map(),       // workspace id → agent messages not seen
  events: null,            // EventSource
  generation: 0,           // bumps on every (re)load so stale responses are dropped
  seenAt: new Map(),       // workspace id → ms timestamp of the last heartbeat seen
};

export const $ = (id) => document.getElementById(id);

/** Element with class and text (text via textContent, so it is never parsed as HTML). */
export function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function shortId(id) {
  return typeof id === 'string' ? id.replace(/-/g, '').slice(0, 8) : '';
}

/** A workspace's name, else "workspace <short id>" (the platform's Feed.nameIn). */
export function nameOf(id) {
  const ws = state.workspaces.get(id);
  return ws && typeof ws.name === 'string' && ws.name.trim() ? ws.name.trim() : 'workspace ' + shortId(id);
}

export function fmtTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** A duration in seconds as "12 s", "5 min", "3 h 10 min", "2 d". */
export function fmtSpan(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d';
}

export function fmtSize(n) {
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KB';
  return (n / (1024 * 1024)).toFixed(1) + ' MB';
}

export function uuid() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
  const b = new Uint8Array(16);
  window.crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// ------------------------------------------------------------------ liveness

/** An online workspace without a heartbeat for this long is shown as silent (the platform's silentAfter). */
export const SILENT_AFTER_S = 45;

/** Seconds since the workspace's last heartbeat, or null when it never sent one. */
export function lastSeenSeconds(ws) {
  const seen = state.seenAt.get(ws.id) || (ws.last_heartbeat_at ? Date.parse(ws.last_heartbeat_at) : NaN);
  return Number.isFinite(seen) ? Math.max(0, (Date.now() - seen) / 1000) : null;
}

export function isSilent(ws) {
  if (ws.status !== 'online' && ws.status !== 'degraded') return false;
  const s = lastSeenSeconds(ws);
  return s === null || s > SILENT_AFTER_S;
}

/** "seen 12 s ago", "no heartbeat for 52 s", "never connected". */
export function livenessText(ws) {
  const s = lastSeenSeconds(ws);
  if (s === null) return 'never connected';
  if (isSilent(ws)) return 'no heartbeat for ' + fmtSpan(s);
  return 'seen ' + fmtSpan(s) + ' ago';
}

// ------------------------------------------------------------------ skills and badges

export function skillsOf(ws) {
  const out = [];
  const push = (s) => {
    let name = null;
    if (typeof s === 'string') name = s;
    else if (s && typeof s === 'object') name = s.name || s.id || null;
    if (typeof name === 'string' && name.trim() && !out.includes(name.trim())) out.push(name.trim());
  };
  const card = ws && ws.agent_card;
  if (card && Array.isArray(card.skills)) card.skills.forEach(push);
  if (ws && Array.isArray(ws.skills)) ws.skills.forEach(push);
  return out;
}

export const STATUS_LABELS = {
  online: 'online',
  awaiting_agent: 'awaiting agent',
  removed: 'removed',
  degraded: 'degraded',
  offline: 'offline',
  provisioning: 'provisioning',
  failed: 'failed',
  silent: 'silent',
};

/** A status badge; an online workspace without a recent heartbeat shows "silent". */
export function badge(status, node, silent) {
  const s = silent ? 'silent' : (typeof status === 'string' && status ? status : 'unknown');
  const b = node || el('span');
  b.className = 'badge';
  b.dataset.status = /^[a-z_]+$/.test(s) ? s : 'other';
  b.textContent = STATUS_LABELS[s] || s.replace(/_/g, ' ');
  b.setAttribute('aria-label', 'status: ' + b.textContent);
  return b;
}

export function upsertWorkspace(ws) {
  if (!ws || typeof ws.id !== 'string') return;
  const old = state.workspaces.get(ws.id) || {};
  state.workspaces.set(ws.id, Object.assign({}, old, ws));
}

/** Live (not removed) children of a workspace, as the platform counts them for the cascade. */
export function liveDescendants(id) {
  const out = [];
  const walk = (parent) => {
    for (const w of state.workspaces.values()) {
      if (w.parent_id === parent && w.status !== 'removed' && !out.includes(w)) {
        out.push(w);
        walk(w.id);
      }
    }
  };
  walk(id);
  return out;
}

// ------------------------------------------------------------------ events between modules

const listeners = new Map();

export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, []);
  listeners.get(type).push(fn);
}

export function emit(type, data) {
  (listeners.get(type) || []).forEach((fn) => {
    try { fn(data); } catch (e) { console.warn(type, e); }
  });
}

// ------------------------------------------------------------------ HTTP

export class HttpError extends Error {
  constructor(status, message, body) { super(message); this.status = status; this.body = body; }
}

/** One admin API call with the bearer; JSON in and out. A 401 signs out (emits 'unauthorized'). */
export async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + state.token, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!resp.ok) {
    const msg = json && typeof json.error === 'string' ? json.error : `HTTP ${resp.status}`;
    if (resp.status === 401) emit('unauthorized', msg);
    throw new HttpError(resp.status, msg, json);
  }
  return json;
}

/** Copies text: the clipboard API where the page is a secure context, else a selected textarea. */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) { /* fall back below */ }
  const area = el('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'visually-hidden';
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
  area.remove();
  return ok;
}

/** Keyboard for a role="tablist": arrows, Home and End move and activate. */
export function tablistKeys(list, activate) {
  list.addEventListener('keydown', (ev) => {
    const tabs = Array.from(list.querySelectorAll('[role="tab"]:not([hidden])'));
    const i = tabs.indexOf(document.activeElement);
    if (i < 0) return;
    let next = null;
    if (ev.key === 'ArrowRight' || ev.key === 'ArrowDown') next = tabs[(i + 1) % tabs.length];
    else if (ev.key === 'ArrowLeft' || ev.key === 'ArrowUp') next = tabs[(i - 1 + tabs.length) % tabs.length];
    else if (ev.key === 'Home') next = tabs[0];
    else if (ev.key === 'End') next = tabs[tabs.length - 1];
    if (next) {
      ev.preventDefault();
      next.focus();
      activate(next.dataset.tab);
    }
  });
}

/** Marks one tab of a tablist selected and shows its panel (aria-selected, tabindex, hidden). */
export function showTab(list, name) {
  list.querySelectorAll('[role="tab"]').forEach((t) => {
    const on = t.dataset.tab === name;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    const panel = $(t.getAttribute('aria-controls'));
    if (panel) panel.hidden = !on;
  });
}
