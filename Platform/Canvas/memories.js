// The Memories tab: what the selected workspace would recall in each scope (its own LOCAL memories, its TEAM's,
// everyone's GLOBAL ones), with who wrote each, searchable.
import { state, $, el, clear, api, on, fmtTime, tablistKeys, showTab } from './core.js';

let scope = 'LOCAL';
let open = false;
let timer = null;

export async function loadMemories() {
  const id = state.selected;
  if (!id) return;
  const q = $('memory-query').value.trim();
  const list = $('memory-list');
  $('memories-error').textContent = '';
  list.setAttribute('aria-busy', 'true');
  try {
    const path = `/admin/memories?workspace_id=${encodeURIComponent(id)}&scope=${scope}` + (q ? '&q=' + encodeURIComponent(q) : '');
    const answer = await api('GET', path);
    if (id !== state.selected) return;
    clear(list);
    const memories = answer && Array.isArray(answer.memories) ? answer.memories : [];
    memories.forEach((m) => {
      const li = el('li', 'memory');
      li.dataset.scope = m.scope;
      const head = el('div', 'memory-head');
      head.appendChild(el('span', 'memory-who', m.workspace_name));
      head.appendChild(el('span', 'chip', m.scope));
      const t = el('time', 'feed-time', fmtTime(m.created_at));
      t.dateTime = m.created_at;
      head.appendChild(t);
      li.appendChild(head);
      li.appendChild(el('div', 'memory-text', m.content));
      list.appendChild(li);
    });
    $('memories-empty').hidden = memories.length > 0;
  } catch (e) {
    if (e.status !== 401) $('memories-error').textContent = 'Could not load the memories: ' + e.message;
  } finally {
    list.removeAttribute('aria-busy');
  }
}

function setScope(s) {
  scope = s;
  showTab($('memory-scopes'), s);
  loadMemories();
}

export function initMemories() {
  const scopes = $('memory-scopes');
  scopes.querySelectorAll('[role="tab"]').forEach((t) => t.addEventListener('click', () => setScope(t.dataset.tab)));
  tablistKeys(scopes, setScope);
  $('memory-query').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(loadMemories, 250);
  });
  on('tab', (name) => { open = name === 'memories'; if (open) loadMemories(); });
  on('memories', () => { if (open) loadMemories(); });
}
