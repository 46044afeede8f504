// The Chat tab: the conversation between the user and a workspace's agent (user messages are a2a_receive rows with
// no source; agent messages are notify rows), sending, and attachments downloaded with the bearer.
import { state, $, el, clear, fmtTime, fmtSize, uuid, api, emit } from './core.js';

const HISTORY_LIMIT = 200;
const chat = { rows: new Set(), pending: new Map(), generation: 0 };

/** Text of the text parts of an A2A message (`parts[].kind|type == "text"`), else a v0.2 `content` string. */
export function partsText(msg) {
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
  return parts.filter((p) => p && (p.kind === 'file' || p.type === 'file') && p.file && typeof p.file === 'object').map((p) => p.file);
}

/** What a row means for the chat: a user bubble, an agent bubble, or nothing. */
export function chatEntry(row) {
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
    const url = URL.createObjectURL(await resp.blob());
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
  const head = el('div', 'bubble-head');
  head.appendChild(el('span', 'bubble-who', entry.who === 'agent' ? (ws && ws.name ? ws.name : 'Agent') : 'You'));
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
      const extra = [typeof f.mimeType === 'string' ? f.mimeType : '', fmtSize(f.size)].filter(Boolean).join(', ');
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
export function addChatRow(row) {
  if (!row || row.workspace_id !== state.selected || chat.rows.has(row.id)) return false;
  const entry = chatEntry(row);
  if (!entry) return false;
  chat.rows.add(row.id);
  const list = $('messages');
  const placeholder = list.querySelector('.messages-empty');
  if (placeholder) placeholder.remove();
  const node = bubble(entry, false);
  const waiting = entry.messageId ? chat.pending.get(entry.messageId) : null;
  if (waiting) {
    chat.pending.delete(entry.messageId);
    list.replaceChild(node, waiting);
  } else {
    list.appendChild(node);
  }
  scrollToEnd();
  return true;
}

/** Enables or disables the composer for a removed workspace. */
export function renderComposer(ws) {
  const removed = !!ws && ws.status === 'removed';
  $('message-input').disabled = removed;
  $('send-button').disabled = removed;
  $('message-input').placeholder = removed
    ? 'This workspace was removed; it cannot receive messages.'
    : 'Message the agent… (Enter to send, Shift+Enter for a new line)';
}

export async function loadHistory() {
  const id = state.selected;
  const gen = ++chat.generation;
  chat.rows = new Set();
  chat.pending = new Map();
  const list = $('messages');
  clear(list);
  $('chat-error').textContent = '';
  list.setAttribute('aria-busy', 'true');
  try {
    const rows = await api('GET', `/workspaces/${encodeURIComponent(id)}/activity?type=a2a_receive&limit=${HISTORY_LIMIT}`);
    if (gen !== chat.generation || id !== state.selected) return;
    (Array.isArray(rows) ? rows.slice().reverse() : []).forEach(addChatRow); // newest first from the platform
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
  chat.pending.set(messageId, waiting);
  list.appendChild(waiting);
  scrollToEnd();
  input.value = '';
  $('send-button').disabled = true;
  try {
    const body = { method: 'message/send', params: { message: { role: 'user', messageId, parts: [{ kind: 'text', text }] } } };
    const answer = await api('POST', `/workspaces/${encodeURIComponent(id)}/a2a`, body);
    if (chat.pending.get(messageId) === waiting) {
      // the log row (via SSE) normally replaces it; until then mark it as delivered
      waiting.classList.remove('is-pending');
      const t = waiting.querySelector('.bubble-time');
      if (t) t.textContent = answer && answer.status === 'queued' ? 'queued for the agent' : 'sent';
    }
    if (answer && answer.result && id === state.selected) { // a push-mode agent answers inline
      const reply = partsText(answer.result) ||
        (Array.isArray(answer.result.artifacts) ? answer.result.artifacts.map(partsText).join('') : '');
      if (reply) list.appendChild(bubble({ who: 'agent', text: reply, files: fileParts(answer.result.parts), at: new Date().toISOString() }, false));
      scrollToEnd();
    }
  } catch (e) {
    chat.pending.delete(messageId);
    waiting.classList.remove('is-pending');
    waiting.classList.add('is-failed');
    const t = waiting.querySelector('.bubble-time');
    if (t) t.textContent = 'not sent';
    if (e.status !== 401) $('chat-error').textContent = 'The message was not delivered: ' + e.message;
    if (!input.value) input.value = text;
  } finally {
    renderComposer(state.workspaces.get(state.selected));
    input.focus();
  }
}

/** An activity row arrived live: show it in the chat, or count it as unread for its workspace. */
export function onActivity(row) {
  const shown = addChatRow(row);
  const entry = chatEntry(row);
  if (!shown && entry && entry.who === 'agent' && row.workspace_id !== state.selected) {
    state.unread.set(row.workspace_id, (state.unread.get(row.workspace_id) || 0) + 1);
    emit('tree');
  }
}

export function initChat() {
  $('composer').addEventListener('submit', sendMessage);
  $('message-input').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $('composer').requestSubmit();
    }
  });
}
