// The Delegations view: who asked whom, what, how it stands and what came back (GET /admin/delegations), refreshed
// when delegation events arrive.
import { $, el, clear, api, on, fmtTime } from './core.js';

let open = false;
let timer = null;

export async function loadDelegations() {
  const list = $('delegation-list');
  try {
    const answer = await api('GET', '/admin/delegations?limit=100');
    const views = answer && Array.isArray(answer.delegations) ? answer.delegations : [];
    clear(list);
    views.forEach((d) => {
      const li = el('li', 'delegation');
      li.dataset.status = d.status;
      li.dataset.id = d.delegation_id;
      const head = el('div', 'feed-head');
      head.appendChild(el('span', 'delegation-who', `${d.source_name} → ${d.target_name || 'unknown workspace'}`));
      const t = el('time', 'feed-time', fmtTime(d.created_at));
      t.dateTime = d.created_at;
      head.appendChild(t);
      li.appendChild(head);
      const status = el('span', 'badge', d.status);
      status.dataset.status = 'delegation-' + d.status;
      const line = el('div', 'delegation-line');
      line.appendChild(status);
      line.appendChild(el('span', 'chip', d.mode === 'sync' ? 'waited for the answer' : 'asynchronous'));
      li.appendChild(line);
      li.appendChild(el('div', 'feed-detail', d.task_preview));
      if (d.result_preview) li.appendChild(el('div', 'feed-result', '→ ' + d.result_preview));
      list.appendChild(li);
    });
    $('delegations-empty').hidden = views.length > 0;
  } catch (_) { /* a 401 signs out; anything else: the next event catches up */ }
}

/** Several delegation events in a row reload once. */
export function delegationsChanged() {
  if (!open) return;
  clearTimeout(timer);
  timer = setTimeout(loadDelegations, 200);
}

export function initDelegations() {
  on('side', (name) => { open = name === 'delegations'; if (open) loadDelegations(); });
}
