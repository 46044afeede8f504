// Live updates over the platform's server-sent events (GET /events): workspaces appear, change and go; heartbeats
// move "last seen"; activity reaches the chat, the feed (its labelled `feed` entry) and the delegations view.
import { state, $, api, emit, upsertWorkspace } from './core.js';
import { addEntry } from './feed.js';
import { onActivity } from './chat.js';
import { delegationsChanged } from './delegations.js';
import { requestsChanged } from './requests.js';

const STATUS_EVENTS = ['WORKSPACE_ONLINE', 'WORKSPACE_DEGRADED', 'WORKSPACE_AWAITING_AGENT', 'WORKSPACE_OFFLINE',
  'WORKSPACE_PROVISIONING', 'WORKSPACE_FAILED', 'WORKSPACE_REMOVED'];

let overviewTimer = null;

export function setConnection(kind, text) {
  const c = $('connection');
  c.dataset.state = kind;
  c.textContent = text;
}

export function stopEvents() {
  if (state.events) {
    state.events.close();
    state.events = null;
  }
}

/** Re-reads every workspace's overview (last seen, delivery, tokens) soon, once for a burst of events. */
export function refreshOverview(delay) {
  clearTimeout(overviewTimer);
  overviewTimer = setTimeout(async () => {
    try {
      const list = await api('GET', '/admin/workspaces');
      (Array.isArray(list) ? list : []).forEach(upsertWorkspace);
      emit('changed');
    } catch (_) { /* the next event or reconnect catches up */ }
  }, delay === undefined ? 400 : delay);
}

function parse(msg) {
  try { return JSON.parse(msg.data); } catch (_) { return null; }
}

/** Opens the stream with a one-time ticket (the admin token never goes into a URL); `restart` after a lost one. */
export async function startEvents(onReconnect, restart) {
  stopEvents();
  let ticket = null;
  try {
    const answer = await api('POST', '/admin/stream-ticket');
    ticket = answer && answer.ticket;
  } catch (e) {
    if (e.status === 401) return; // signed out
  }
  if (!ticket) {
    setConnection('down', 'Disconnected');
    setTimeout(() => { if (!state.events && state.token) startEvents(onReconnect, true); }, 3000);
    return;
  }
  const es = new EventSource('/events?ticket=' + encodeURIComponent(ticket));
  state.events = es;
  let opened = false;
  es.onopen = () => {
    setConnection('live', 'Live');
    if (opened || restart) onReconnect(); // catch up with whatever happened while the stream was down
    opened = true;
  };
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED || opened) {
      // a ticket opens one stream: reconnect with a fresh one
      es.close();
      setConnection('retry', 'Reconnecting…');
      setTimeout(() => { if (state.events === es) startEvents(onReconnect, true); }, 1000);
    } else {
      setConnection('retry', 'Reconnecting…');
    }
  };

  const handle = (type, fn) => es.addEventListener(type, (m) => {
    const e = parse(m);
    if (!e) return;
    if (e.payload && e.payload.feed) addEntry(e.payload.feed);
    fn(e);
  });

  const workspaceChanged = (e) => {
    if (e.payload && e.payload.workspace) upsertWorkspace(e.payload.workspace);
    emit('changed');
    refreshOverview();
  };
  handle('WORKSPACE_CREATED', workspaceChanged);
  handle('WORKSPACE_UPDATED', workspaceChanged);

  STATUS_EVENTS.forEach((type) => handle(type, (e) => {
    const ws = state.workspaces.get(e.workspace_id);
    const status = e.payload && typeof e.payload.status === 'string' ? e.payload.status : null;
    if (ws && status) ws.status = status;
    if (type === 'WORKSPACE_ONLINE' && ws) state.seenAt.set(ws.id, Date.parse(e.at));
    emit('changed');
    refreshOverview(); // the agent card (skills) may have changed on register
  }));

  handle('WORKSPACE_HEARTBEAT', (e) => {
    const ws = state.workspaces.get(e.workspace_id);
    if (!ws) { refreshOverview(); return; }
    state.seenAt.set(ws.id, Date.parse(e.at));
    ws.last_heartbeat_at = e.at;
    if (e.payload && typeof e.payload.uptime_seconds === 'number') ws.uptime_seconds = e.payload.uptime_seconds;
    const status = e.payload && typeof e.payload.status === 'string' ? e.payload.status : ws.status;
    const changed = status !== ws.status;
    ws.status = status;
    emit(changed ? 'changed' : 'tick');
  });

  handle('ACTIVITY_LOGGED', (e) => {
    const row = e.payload ? e.payload.activity : null;
    if (!row || typeof row.id !== 'string') return;
    onActivity(row);
    if (row.activity_type === 'a2a_receive') refreshOverview(1000); // delivery counts
    if (row.activity_type === 'delegation' || row.activity_type === 'a2a_send') delegationsChanged();
    if (row.activity_type === 'memory_write_global') emit('memories');
  });

  ['DELEGATION_SENT', 'DELEGATION_STATUS', 'DELEGATION_COMPLETE', 'DELEGATION_FAILED'].forEach((t) => handle(t, delegationsChanged));
  ['REQUEST_CREATED', 'REQUEST_RESPONDED', 'REQUEST_MESSAGE', 'REQUEST_CANCELLED', 'APPROVAL_REQUESTED',
    'APPROVAL_APPROVED', 'APPROVAL_DENIED', 'APPROVAL_WITHDRAWN'].forEach((t) => handle(t, requestsChanged));
}
