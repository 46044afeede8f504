// The Tokens tab: a workspace's live tokens (prefix, created, last used), minting one (shown once, with a
// connection line per MCP client) and revoking one (after a second click).
import { state, $, el, clear, api, on, fmtTime } from './core.js';
import { showOnce } from './dialogs.js';

let open = false;

export async function loadTokens() {
  const id = state.selected;
  const list = $('token-list');
  const ws = state.workspaces.get(id);
  $('mint-token').disabled = !ws || ws.status === 'removed';
  $('tokens-error').textContent = '';
  try {
    const answer = await api('GET', `/workspaces/${encodeURIComponent(id)}/tokens`);
    if (id !== state.selected) return;
    clear(list);
    const tokens = answer && Array.isArray(answer.tokens) ? answer.tokens : [];
    $('tokens-empty').hidden = tokens.length > 0;
    tokens.forEach((t) => list.appendChild(tokenRow(id, t)));
  } catch (e) {
    if (e.status !== 401) $('tokens-error').textContent = 'Could not load the tokens: ' + e.message;
  }
}

function tokenRow(wsId, t) {
  const tr = el('tr');
  tr.dataset.tokenId = t.id;
  tr.appendChild(el('td', 'mono', (t.prefix || '') + '…'));
  tr.appendChild(el('td', null, fmtTime(t.created_at)));
  tr.appendChild(el('td', null, t.last_used_at ? fmtTime(t.last_used_at) : 'never'));
  const cell = el('td');
  const revoke = el('button', 'small danger', 'Revoke');
  revoke.type = 'button';
  revoke.setAttribute('aria-label', `Revoke token ${t.prefix || ''}…`);
  revoke.addEventListener('click', async () => {
    if (revoke.dataset.armed !== 'true') {
      revoke.dataset.armed = 'true';
      revoke.textContent = 'Confirm revoke';
      revoke.setAttribute('aria-label', `Confirm: revoke token ${t.prefix || ''}…`);
      return;
    }
    revoke.disabled = true;
    try {
      const answer = await api('DELETE', `/workspaces/${encodeURIComponent(wsId)}/tokens/${encodeURIComponent(t.id)}`);
      $('tokens-status').textContent = `Token ${t.prefix || ''}… revoked. ` + (answer && answer.message ? answer.message : '');
      await loadTokens();
      $('mint-token').focus();
    } catch (e) {
      revoke.disabled = false;
      $('tokens-error').textContent = 'Not revoked: ' + e.message;
    }
  });
  cell.appendChild(revoke);
  tr.appendChild(cell);
  return tr;
}

async function mint() {
  const id = state.selected;
  $('tokens-error').textContent = '';
  try {
    const answer = await api('POST', `/workspaces/${encodeURIComponent(id)}/tokens`, { platform_url: window.location.origin });
    showOnce($('mint-result'), answer);
    $('tokens-status').textContent = 'Token minted.';
    await loadTokens();
  } catch (e) {
    $('tokens-error').textContent = 'Not minted: ' + e.message;
  }
}

function forget() {
  clear($('mint-result'));
  $('mint-result').hidden = true;
  $('tokens-status').textContent = '';
}

export function initTokens() {
  $('mint-token').addEventListener('click', mint);
  on('tab', (name) => {
    open = name === 'tokens';
    if (!open) forget(); // a minted token is not kept around
    else loadTokens();
  });
  on('select', forget);
}
