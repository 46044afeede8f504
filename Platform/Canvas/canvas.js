// Molecule canvas: the team tree, a chat per workspace and an activity feed, kept live by the platform's
// server-sent events. Plain DOM, no framework, no build step. Untrusted text only ever goes through
// textContent / attributes set by the DOM API, never through an HTML-parsing property.
'use strict';

(function () {
  const TOKEN_KEY = 'molecule.canvas.adminToken';
  const FEED_MAX = 200;
  const HISTORY_LIMIT = 200;

  const state = {
    token: null,
    workspaces: new Map(),   // id → workspace JSON
    selected: null,          // workspace id
    chatRows: new Set(),     // activity ids rendered in the current chat
    pending: new Map(),      // messageId → bubble element (user messages not yet seen in the log)
    feedRows: new Set(),     // activity ids in the feed
    unread: new Map(),       // workspace id → count of agent messages not seen
    events: null,            // EventSource
    generation: 0,           // bumps on every (re)load so stale responses are dropped
  };

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ small DOM helpers

  /** Element with class and text (text via textContent, so it is never parsed as HTML). */
  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function fmtTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const today = new Date();
    const sameDay = d.toDateString() === today.toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
      : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }

  function fmtSize(n) {
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) return '';
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KB';
    return (n / (1024 * 1024)).toFixed(1) + ' MB';
  }

  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
    const b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function shortId(id) {
    return typeof id === 'string' ? id.slice(0, 8) : '';
  }

  // ------------------------------------------------------------------ token

  /** Takes `#token=…` from the fragment (then removes it from the address bar), else the tab's stored token. */
  function readToken() {
    const hash = window.location.hash.replace(/^#/, '');
    if (hash) {
      const params = new URLSearchParams(hash);
      const t = params.get('token');
      if (t) {
        try { sessionStorage.setItem(TOKEN_KEY, t.trim()); } catch (_) { /* storage disabled */ }
        params.delete('token');
        const rest = params.toString();
        history.replaceState(null, '', window.location.pathname + window.location.search + (rest ? '#' + rest : ''));
        return t.trim();
      }
    }
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (_) { return state.token; }
  }

  function storeToken(t) {
    state.token = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage disabled: keep it in memory */ }
  }

  function showLogin(message) {
    stopEvents();
    $('app').hidden = true;
    $('forget-token').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    setConnection('idle', 'Not connected');
    $('token-input').focus();
  }

  // ------------------------------------------------------------------ HTTP

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
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
      if (resp.status === 401) {
        storeToken(null);
        showLogin('The platform rejected the token (' + msg + '). Paste a valid admin token.');
      }
      throw new HttpError(resp.status, msg);
    }
    return json;
  }

  // ------------------------------------------------------------------ workspaces and the tree

  function skillsOf(ws) {
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

  const STATUS_LABELS = {
    online: 'online',
    awaiting_agent: 'awaiting agent',
    removed: 'removed',
    degraded: 'degraded',
    offline: 'offline',
    provisioning: 'provisioning',
    failed: 'failed',
  };

  function badge(status, node) {
    const s = typeof status === 'string' && status ? status : 'unknown';
    const b = node || el('span');
    b.className = 'badge';
    b.dataset.status = /^[a-z_]+$/.test(s) ? s : 'other';
    b.textContent = STATUS_LABELS[s] || s.replace(/_/g, ' ');
    b.setAttribute('aria-label', 'status: ' + b.textContent);
    return b;
  }

  function upsertWorkspace(ws) {
    if (!ws || typeof ws.id !== 'string') return;
    const old = state.workspaces.get(ws.id) || {};
    state.workspaces.set(ws.id, Object.assign({}, old, ws));
  }

  function childrenOf(parentId) {
    return Array.from(state.workspaces.values())
      .filter((w) => (w.parent_id || null) === parentId)
      .sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)) || String(a.name).localeCompare(String(b.name)));
  }

  function renderTree() {
    const tree = $('team');
    const focusedId = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.id : null;
    clear(tree);
    const ids = new Set(state.workspaces.keys());
    // roots: no parent, or a parent this canvas does not know
    const roots = Array.from(state.workspaces.values())
      .filter((w) => !w.parent_id || !ids.has(w.parent_id))
      .sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
    const seen = new Set();
    const build = (ws, level, into) => {
      if (seen.has(ws.id)) return; // defensive: never loop on a cycle
      seen.add(ws.id);
      into.appendChild(treeItem(ws, level));
      const kids = childrenOf(ws.id);
      if (kids.length) {
        const group = el('ul', 'tree-group');
        group.setAttribute('role', 'group');
        kids.forEach((k) => build(k, level + 1, group));
        into.lastChild.appendChild(group);
      }
    };
    roots.forEach((r) => build(r, 1, tree));
    const live = Array.from(state.workspaces.values()).filter((w) => w.status !== 'removed').length;
    $('team-count').textContent = state.workspaces.size ? `(${live} active)` : '';
    $('team-empty').hidden = state.workspaces.size > 0;
    if (focusedId) {
      const again = tree.querySelector(`[data-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
  }

  function treeItem(ws, level) {
    const li = el('li', 'tree-item');
    li.setAttribute('role', 'none');
    const row = el('div', 'node');
    row.setAttribute('role', 'treeitem');
    row.setAttribute('aria-level', String(level));
    row.setAttribute('aria-selected', String(ws.id === state.selected));
    row.tabIndex = ws.id === state.selected || (!state.selected && level === 1) ? 0 : -1;
    row.dataset.id = ws.id;
    row.dataset.testid = 'workspace';
    if (ws.status === 'removed') row.classList.add('is-removed');
    if (ws.id === state.selected) row.classList.add('is-selected');

    const top = el('div', 'node-top');
    top.appendChild(el('span', 'node-name', ws.name || shortId(ws.id)));
    const unread = state.unread.get(ws.id) || 0;
    if (unread > 0) {
      const u = el('span', 'unread', String(unread));
      u.setAttribute('aria-label', `${unread} new message${unread === 1 ? '' : 's'}`);
      top.appendChild(u);
    }
    top.appendChild(badge(ws.status));
    row.appendChild(top);

    const meta = [ws.role, ws.delivery_mode ? ws.delivery_mode + ' mode' : null].filter(Boolean).join(' · ');
    if (meta) row.appendChild(el('div', 'node-meta', meta));

    const skills = skillsOf(ws);
    if (skills.length) {
      const ul = el('ul', 'skills');
      ul.setAttribute('aria-label', 'Skills');
      skills.slice(0, 6).forEach((s) => ul.appendChild(el('li', 'chip', s)));
      if (skills.length > 6) ul.appendChild(el('li', 'chip chip-more', `+${skills.length - 6}`));
      row.appendChild(ul);
    }

    row.addEventListener('click', () => select(ws.id));
    row.addEventListener('keydown', onTreeKey);
    li.appendChild(row);
    return li;
  }

  function onTreeKey(ev) {
    const items = Array.from($('team').querySelectorAll('[role="treeitem"]'));
    const i = items.indexOf(ev.currentTarget);
    let next = null;
    if (ev.key === 'ArrowDown') next = items[i + 1];
    else if (ev.key === 'ArrowUp') next = items[i - 1];
    else if (ev.key === 'Home') next = items[0];
    else if (ev.key === 'End') next = items[items.length - 1];
    else if (ev.key === 'Enter' || ev.key === ' ') {
      ev.preventDefault();
      select(ev.currentTarget.dataset.id);
      return;
    }
    if (next) {
      ev.preventDefault();
      items.forEach((it) => { it.tabIndex = -1; });
      next.tabIndex = 0;
      next.focus();
    }
  }

  // ------------------------------------------------------------------ chat

  /** Text of the text parts of an A2A message (`parts[].kind|type == "text"`), else a v0.2 `content` string. */
  function partsText(msg) {
    if (!msg || typeof msg !== 'object') return '';
    if (Array.isArray(msg.parts)) {
      return msg.parts
        .filter((p) => p && (p.kind === 'text' || p.type === 'text') && typeof p.text === 'string')
        .map((p) => p.text)
        .join('');
    }
    return typeof msg.content === 'string' ? msg.content : '';
  }

  function fileParts(parts) {
    if (!Array.isArray(parts)) return [];
    return parts
      .filter((p) => p && (p.kind === 'file' || p.type === 'file') && p.file && typeof p.file === 'object')
      .map((p) => p.file);
  }

  /**
   * What a row means for the chat: a user bubble (a canvas-user message: a2a_receive with no source,
   * method message/send), an agent bubble (a notify row: the agent's send_message_to_user), or nothing.
   */
  function chatEntry(row) {
    if (!row || row.activity_type !== 'a2a_receive') return null;
    if (row.method === 'notify') {
      const r = row.response_body || {};
      const text = typeof r.result === 'string' ? r.result : partsText(r);
      return { who: 'agent', text, files: fileParts(r.parts), at: row.created_at, id: row.id };
    }
    if (!row.source_id && (row.method === 'message/send' || row.method === 'message/stream')) {
      const req = row.request_body || {};
      const msg = (req.params && req.params.message) || {};
      return {
        who: 'user', text: partsText(msg), files: fileParts(msg.parts), at: row.created_at, id: row.id,
        messageId: typeof msg.messageId === 'string' ? msg.messageId : null,
      };
    }
    return null;
  }

  function safeHref(uri) {
    try {
      const u = new URL(uri, window.location.href);
      return u.protocol === 'http:' || u.protocol === 'https:' ? u : null;
    } catch (_) {
      return null;
    }
  }

  /** Downloads go through fetch with the admin bearer (a plain link cannot carry it) when the file is ours. */
  async function downloadAttachment(ev) {
    const a = ev.currentTarget;
    const u = safeHref(a.href);
    if (!u || u.origin !== window.location.origin || !/^\/workspaces\/[^/]+\/chat\/uploads\//.test(u.pathname)) return;
    ev.preventDefault();
    try {
      const resp = await fetch(u.pathname, { headers: { Authorization: 'Bearer ' + state.token }, cache: 'no-store' });
      if (!resp.ok) throw new Error('HTTP ' + resp.status);
      const blob = await resp.blob();
      const url = URL.createObjectURL(blob);
      const tmp = document.createElement('a');
      tmp.href = url;
      tmp.download = a.dataset.filename || 'attachment';
      document.body.appendChild(tmp);
      tmp.click();
      tmp.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      $('chat-error').textContent = 'Could not download the attachment: ' + e.message;
    }
  }

  function bubble(entry, pending) {
    const li = el('li', 'bubble bubble-' + entry.who);
    li.dataset.testid = entry.who === 'agent' ? 'agent-bubble' : 'user-bubble';
    if (entry.id) li.dataset.activityId = entry.id;
    const ws = state.workspaces.get(state.selected);
    const who = entry.who === 'agent' ? (ws && ws.name ? ws.name : 'Agent') : 'You';
    const head = el('div', 'bubble-head');
    head.appendChild(el('span', 'bubble-who', who));
    const time = el('time', 'bubble-time', pending ? 'sending…' : fmtTime(entry.at));
    if (entry.at) time.dateTime = entry.at;
    head.appendChild(time);
    li.appendChild(head);
    li.appendChild(el('div', 'bubble-text', entry.text || (entry.files && entry.files.length ? '' : '(empty message)')));
    if (entry.files && entry.files.length) {
      const ul = el('ul', 'attachments');
      ul.setAttribute('aria-label', 'Attachments');
      entry.files.forEach((f) => {
        const item = el('li', 'attachment');
        const name = typeof f.name === 'string' && f.name ? f.name : 'attachment';
        const href = typeof f.uri === 'string' ? safeHref(f.uri) : null;
        if (href) {
          const a = el('a', 'attachment-link', name);
          a.href = href.href;
          a.dataset.filename = name;
          a.rel = 'noopener noreferrer';
          a.addEventListener('click', downloadAttachment);
          item.appendChild(a);
        } else {
          item.appendChild(el('span', 'attachment-link', name));
        }
        const size = fmtSize(f.size);
        const extra = [typeof f.mimeType === 'string' ? f.mimeType : '', size].filter(Boolean).join(', ');
        if (extra) item.appendChild(el('span', 'attachment-meta', ' ' + extra));
        ul.appendChild(item);
      });
      li.appendChild(ul);
    }
    if (pending) li.classList.add('is-pending');
    return li;
  }

  function scrollToEnd() {
    const m = $('messages');
    m.scrollTop = m.scrollHeight;
  }

  /** Adds a row to the open chat if it is a chat message not shown yet (history, SSE and send all meet here). */
  function addChatRow(row) {
    if (!row || row.workspace_id !== state.selected || state.chatRows.has(row.id)) return false;
    const entry = chatEntry(row);
    if (!entry) return false;
    state.chatRows.add(row.id);
    const list = $('messages');
    const placeholder = list.querySelector('.messages-empty');
    if (placeholder) placeholder.remove();
    const node = bubble(entry, false);
    const waiting = entry.messageId ? state.pending.get(entry.messageId) : null;
    if (waiting) {
      state.pending.delete(entry.messageId);
      list.replaceChild(node, waiting);
    } else {
      list.appendChild(node);
    }
    scrollToEnd();
    return true;
  }

  function renderChatHeader() {
    const ws = state.workspaces.get(state.selected);
    if (!ws) return;
    $('chat-name').textContent = ws.name || shortId(ws.id);
    const meta = [ws.role, 'id ' + ws.id, ws.delivery_mode ? ws.delivery_mode + ' mode' : null].filter(Boolean);
    $('chat-meta').textContent = meta.join(' · ');
    badge(ws.status, $('chat-status'));
    const skills = $('chat-skills');
    clear(skills);
    skillsOf(ws).forEach((s) => skills.appendChild(el('li', 'chip', s)));
    skills.hidden = !skills.firstChild;
    const removed = ws.status === 'removed';
    $('message-input').disabled = removed;
    $('send-button').disabled = removed;
    $('message-input').placeholder = removed
      ? 'This workspace was removed; it cannot receive messages.'
      : 'Message the agent… (Enter to send, Shift+Enter for a new line)';
  }

  async function select(id) {
    if (!state.workspaces.has(id)) return;
    const changed = state.selected !== id;
    state.selected = id;
    state.unread.delete(id);
    if (window.location.hash !== '#ws=' + id) history.replaceState(null, '', '#ws=' + id);
    renderTree();
    $('chat-placeholder').hidden = true;
    $('chat').hidden = false;
    renderChatHeader();
    if (changed) {
      $('chat-error').textContent = '';
      await loadHistory();
    }
  }

  async function loadHistory() {
    const id = state.selected;
    const gen = ++state.generation;
    state.chatRows = new Set();
    state.pending = new Map();
    const list = $('messages');
    clear(list);
    list.setAttribute('aria-busy', 'true');
    try {
      const rows = await api('GET', `/workspaces/${encodeURIComponent(id)}/activity?type=a2a_receive&limit=${HISTORY_LIMIT}`);
      if (gen !== state.generation || id !== state.selected) return;
      // newest first from the platform; show oldest first
      (Array.isArray(rows) ? rows.slice().reverse() : []).forEach(addChatRow);
      if (!list.firstChild) list.appendChild(el('li', 'messages-empty', 'No messages yet. Say hello to the agent.'));
    } catch (e) {
      if (e.status !== 401) $('chat-error').textContent = 'Could not load the conversation: ' + e.message;
    } finally {
      list.removeAttribute('aria-busy');
    }
  }

  async function sendMessage(ev) {
    ev.preventDefault();
    const input = $('message-input');
    const text = input.value.trim();
    const id = state.selected;
    if (!text || !id) return;
    $('chat-error').textContent = '';
    const messageId = uuid();
    const list = $('messages');
    const placeholder = list.querySelector('.messages-empty');
    if (placeholder) placeholder.remove();
    const waiting = bubble({ who: 'user', text, files: [], at: null }, true);
    state.pending.set(messageId, waiting);
    list.appendChild(waiting);
    scrollToEnd();
    input.value = '';
    $('send-button').disabled = true;
    try {
      const body = {
        method: 'message/send',
        params: { message: { role: 'user', messageId, parts: [{ kind: 'text', text }] } },
      };
      const answer = await api('POST', `/workspaces/${encodeURIComponent(id)}/a2a`, body);
      if (state.pending.get(messageId) === waiting) {
        // the log row (via SSE) normally replaces it; until then mark it as delivered
        waiting.classList.remove('is-pending');
        const t = waiting.querySelector('.bubble-time');
        if (t) t.textContent = answer && answer.status === 'queued' ? 'queued for the agent' : 'sent';
      }
      // a push-mode agent answers inline
      if (answer && answer.result && id === state.selected) {
        const reply = partsText(answer.result) ||
          (Array.isArray(answer.result.artifacts) ? answer.result.artifacts.map(partsText).join('') : '');
        if (reply) list.appendChild(bubble({ who: 'agent', text: reply, files: fileParts(answer.result.parts), at: new Date().toISOString() }, false));
        scrollToEnd();
      }
    } catch (e) {
      state.pending.delete(messageId);
      waiting.classList.remove('is-pending');
      waiting.classList.add('is-failed');
      const t = waiting.querySelector('.bubble-time');
      if (t) t.textContent = 'not sent';
      if (e.status !== 401) $('chat-error').textContent = 'The message was not delivered: ' + e.message;
      if (!input.value) input.value = text;
    } finally {
      const ws = state.workspaces.get(state.selected);
      $('send-button').disabled = !!(ws && ws.status === 'removed');
      input.focus();
    }
  }

  // ------------------------------------------------------------------ activity feed

  function describe(row) {
    const ws = state.workspaces.get(row.workspace_id);
    const name = ws && ws.name ? ws.name : shortId(row.workspace_id);
    const entry = chatEntry(row);
    if (entry && entry.who === 'agent') return { name, what: 'agent → user: ' + entry.text };
    if (entry && entry.who === 'user') return { name, what: 'user → agent: ' + entry.text };
    const summary = typeof row.summary === 'string' && row.summary ? row.summary
      : [row.activity_type, row.method].filter(Boolean).join(' ');
    return { name, what: summary };
  }

  function feedItem(row) {
    const li = el('li', 'feed-item');
    li.dataset.type = typeof row.activity_type === 'string' ? row.activity_type : '';
    const d = describe(row);
    const head = el('div', 'feed-head');
    head.appendChild(el('span', 'feed-ws', d.name));
    const t = el('time', 'feed-time', fmtTime(row.created_at));
    if (row.created_at) t.dateTime = row.created_at;
    head.appendChild(t);
    li.appendChild(head);
    const what = d.what.length > 240 ? d.what.slice(0, 240) + '…' : d.what;
    li.appendChild(el('div', 'feed-text', what));
    if (row.status && row.status !== 'ok') li.appendChild(el('span', 'feed-status', row.status));
    return li;
  }

  function feedNote(text, at) {
    const li = el('li', 'feed-item feed-note');
    const head = el('div', 'feed-head');
    head.appendChild(el('span', 'feed-ws', 'platform'));
    head.appendChild(el('time', 'feed-time', fmtTime(at || new Date().toISOString())));
    li.appendChild(head);
    li.appendChild(el('div', 'feed-text', text));
    return li;
  }

  function prependFeed(node) {
    const feed = $('activity');
    feed.insertBefore(node, feed.firstChild);
    while (feed.childNodes.length > FEED_MAX) feed.removeChild(feed.lastChild);
  }

  function addFeedRow(row) {
    if (!row || typeof row.id !== 'string' || state.feedRows.has(row.id)) return;
    state.feedRows.add(row.id);
    prependFeed(feedItem(row));
  }

  async function loadFeed() {
    const gen = state.generation;
    const live = Array.from(state.workspaces.values()).filter((w) => w.status !== 'removed');
    const pages = await Promise.all(live.map((w) =>
      api('GET', `/workspaces/${encodeURIComponent(w.id)}/activity?limit=25`).catch(() => [])));
    if (gen !== state.generation) return;
    const rows = pages.flat().filter((r) => r && typeof r.id === 'string');
    rows.sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)) || (a.seq || 0) - (b.seq || 0));
    clear($('activity'));
    state.feedRows = new Set();
    rows.slice(-FEED_MAX).forEach(addFeedRow);
  }

  // ------------------------------------------------------------------ live updates (SSE)

  function setConnection(kind, text) {
    const c = $('connection');
    c.dataset.state = kind;
    c.textContent = text;
  }

  function stopEvents() {
    if (state.events) {
      state.events.close();
      state.events = null;
    }
  }

  const STATUS_EVENTS = ['WORKSPACE_ONLINE', 'WORKSPACE_DEGRADED', 'WORKSPACE_AWAITING_AGENT', 'WORKSPACE_OFFLINE',
    'WORKSPACE_PROVISIONING', 'WORKSPACE_FAILED', 'WORKSPACE_REMOVED'];

  async function refreshWorkspace(id) {
    try {
      const resp = await fetch(`/workspaces/${encodeURIComponent(id)}?include_removed=true`, { cache: 'no-store' });
      if (!resp.ok) return;
      const ws = await resp.json();
      upsertWorkspace(ws);
      renderTree();
      if (id === state.selected) renderChatHeader();
    } catch (_) { /* the next event or reconnect catches up */ }
  }

  function parseEvent(msg) {
    try { return JSON.parse(msg.data); } catch (_) { return null; }
  }

  function startEvents() {
    stopEvents();
    const es = new EventSource('/events?token=' + encodeURIComponent(state.token));
    state.events = es;
    let opened = false;
    es.onopen = () => {
      setConnection('live', 'Live');
      // after a reconnect, catch up with whatever happened while the stream was down
      if (opened) reload(false);
      opened = true;
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        // the server refused the stream (e.g. a wrong token): check the token, retry later
        setConnection('down', 'Disconnected');
        api('GET', '/workspaces').then(() => setTimeout(() => { if (state.events === es) startEvents(); }, 3000), () => {});
      } else {
        setConnection('retry', 'Reconnecting…');
      }
    };

    es.addEventListener('WORKSPACE_CREATED', (m) => {
      const e = parseEvent(m);
      if (!e || !e.payload || !e.payload.workspace) return;
      upsertWorkspace(e.payload.workspace);
      renderTree();
      prependFeed(feedNote(`workspace “${e.payload.workspace.name || shortId(e.workspace_id)}” created`, e.at));
    });

    STATUS_EVENTS.forEach((type) => es.addEventListener(type, (m) => {
      const e = parseEvent(m);
      if (!e || typeof e.workspace_id !== 'string') return;
      const ws = state.workspaces.get(e.workspace_id);
      const status = e.payload && typeof e.payload.status === 'string' ? e.payload.status : null;
      if (ws && status) {
        ws.status = status;
        renderTree();
        if (e.workspace_id === state.selected) renderChatHeader();
      }
      const name = ws && ws.name ? ws.name : shortId(e.workspace_id);
      if (status) prependFeed(feedNote(`${name} is now ${STATUS_LABELS[status] || status}`, e.at));
      // the agent card (skills) may have changed on register
      refreshWorkspace(e.workspace_id);
    }));

    es.addEventListener('WORKSPACE_HEARTBEAT', (m) => {
      const e = parseEvent(m);
      if (!e || typeof e.workspace_id !== 'string') return;
      const ws = state.workspaces.get(e.workspace_id);
      if (!ws) { refreshWorkspace(e.workspace_id); return; }
      const status = e.payload && typeof e.payload.status === 'string' ? e.payload.status : ws.status;
      if (status !== ws.status) {
        ws.status = status;
        renderTree();
        if (e.workspace_id === state.selected) renderChatHeader();
      }
    });

    es.addEventListener('ACTIVITY_LOGGED', (m) => {
      const e = parseEvent(m);
      const row = e && e.payload ? e.payload.activity : null;
      if (!row || typeof row.id !== 'string') return;
      addFeedRow(row);
      const shown = addChatRow(row);
      const entry = chatEntry(row);
      if (!shown && entry && entry.who === 'agent' && row.workspace_id !== state.selected) {
        state.unread.set(row.workspace_id, (state.unread.get(row.workspace_id) || 0) + 1);
        renderTree();
      }
    });
  }

  // ------------------------------------------------------------------ start

  async function reload(restartEvents) {
    const gen = ++state.generation;
    const list = await api('GET', '/workspaces');
    if (gen !== state.generation) return;
    state.workspaces = new Map();
    (Array.isArray(list) ? list : []).forEach(upsertWorkspace);
    renderTree();
    if (restartEvents) startEvents();
    const wanted = /^#ws=([0-9a-fA-F-]{36})$/.exec(window.location.hash);
    const target = state.selected || (wanted ? wanted[1] : null);
    if (target && state.workspaces.has(target)) {
      state.selected = null; // force a fresh history load
      await select(target);
    }
    await loadFeed();
  }

  async function connect() {
    $('login').hidden = true;
    $('app').hidden = false;
    $('forget-token').hidden = false;
    setConnection('retry', 'Connecting…');
    try {
      await reload(true);
    } catch (e) {
      if (e.status !== 401) setConnection('down', 'Platform unreachable: ' + e.message);
    }
  }

  function init() {
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const t = $('token-input').value.trim();
      if (!t) return;
      $('token-input').value = '';
      storeToken(t);
      connect();
    });
    $('forget-token').addEventListener('click', () => {
      storeToken(null);
      state.workspaces = new Map();
      state.selected = null;
      showLogin('');
    });
    $('composer').addEventListener('submit', sendMessage);
    $('message-input').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        $('composer').requestSubmit();
      }
    });

    const t = readToken();
    if (t) {
      state.token = t;
      connect();
    } else {
      showLogin('');
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
