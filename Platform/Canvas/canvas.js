// Molecule console: the team tree, a workspace's chat, details, tokens and memories, the activity feed and the
// delegations view, kept live by the platform's server-sent events. Plain DOM and ES modules, no build step.
import { state, $, api, on, emit, upsertWorkspace, tablistKeys, showTab } from './core.js';
import { renderTree, tickLiveness } from './tree.js';
import { initChat } from './chat.js';
import { initWorkspace, renderHeader, tickHeader, select } from './workspace.js';
import { initDialogs } from './dialogs.js';
import { initTokens } from './tokens.js';
import { initMemories } from './memories.js';
import { initFeed, loadFeed, renderFeedFilters } from './feed.js';
import { initDelegations } from './delegations.js';
import { initRequests, openRequests, reload as reloadRequests, tickRequests } from './requests.js';
import { startEvents, stopEvents, setConnection, refreshOverview } from './live.js';

const TOKEN_KEY = 'molecule.canvas.adminToken';

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
  $('new-workspace').hidden = true;
  $('requests-open').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  setConnection('idle', 'Not connected');
  $('token-input').focus();
}

function openSide(name) {
  showTab($('side-tabs'), name);
  emit('side', name);
}

async function reload(restartEvents) {
  const gen = ++state.generation;
  const list = await api('GET', '/admin/workspaces');
  if (gen !== state.generation) return;
  state.workspaces = new Map();
  (Array.isArray(list) ? list : []).forEach(upsertWorkspace);
  renderTree();
  renderFeedFilters();
  if (restartEvents) startEvents(() => reload(false));
  const wanted = /^#ws=([0-9a-fA-F-]{36})$/.exec(window.location.hash);
  const target = state.selected || (wanted ? wanted[1] : null);
  if (target && state.workspaces.has(target)) {
    state.selected = null; // force a fresh history load
    await select(target);
  } else if (window.location.hash === '#requests') {
    openRequests();
  }
  await Promise.all([loadFeed(), reloadRequests()]);
}

async function connect() {
  $('login').hidden = true;
  $('app').hidden = false;
  $('forget-token').hidden = false;
  $('new-workspace').hidden = false;
  $('requests-open').hidden = false;
  setConnection('retry', 'Connecting…');
  try {
    await reload(true);
  } catch (e) {
    if (e.status !== 401) setConnection('down', 'Platform unreachable: ' + e.message);
  }
}

function init() {
  initChat();
  initWorkspace();
  initDialogs();
  initTokens();
  initMemories();
  initFeed();
  initDelegations();
  initRequests();

  on('unauthorized', (msg) => {
    storeToken(null);
    showLogin('The platform rejected the token (' + msg + '). Paste a valid admin token.');
  });
  on('tree', renderTree);
  on('tick', () => { tickLiveness(); tickHeader(); });
  on('changed', () => { renderTree(); renderFeedFilters(); if (state.selected) renderHeader(); });
  on('workspace', (ws) => { upsertWorkspace(ws); emit('changed'); refreshOverview(); });
  on('deleted', () => { refreshOverview(0); $('workspace').focus(); });

  $('side-tabs').querySelectorAll('[role="tab"]').forEach((t) => t.addEventListener('click', () => openSide(t.dataset.tab)));
  tablistKeys($('side-tabs'), openSide);

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

  // "last seen" ages move every second; the overview (delivery, tokens, acks) every 15 s
  setInterval(() => { if (state.token && !$('app').hidden) { tickLiveness(); tickHeader(); tickRequests(); } }, 1000);
  // Alt+R opens the Requests view from anywhere
  document.addEventListener('keydown', (ev) => {
    if (ev.altKey && !ev.ctrlKey && !ev.metaKey && (ev.key === 'r' || ev.key === 'R') && !$('app').hidden) {
      ev.preventDefault();
      openRequests();
    }
  });
  setInterval(() => { if (state.token && !$('app').hidden) refreshOverview(0); }, 15000);

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
