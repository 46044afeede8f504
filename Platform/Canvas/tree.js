// The team tree: workspaces nested by parent, a status badge (silent when the heartbeat stopped), when each was last
// seen, skills; a WAI-ARIA tree (aria-level, aria-expanded, arrow keys, Home/End, Enter).
import { state, $, el, clear, shortId, badge, skillsOf, isSilent, livenessText, emit } from './core.js';

function byCreated(a, b) {
  return String(a.created_at).localeCompare(String(b.created_at)) || String(a.name).localeCompare(String(b.name));
}

function childrenOf(parentId) {
  return Array.from(state.workspaces.values()).filter((w) => (w.parent_id || null) === parentId).sort(byCreated);
}

export function renderTree() {
  const tree = $('team');
  const focusedId = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.id : null;
  clear(tree);
  const ids = new Set(state.workspaces.keys());
  // roots: no parent, or a parent this console does not know
  const roots = Array.from(state.workspaces.values()).filter((w) => !w.parent_id || !ids.has(w.parent_id)).sort(byCreated);
  const seen = new Set();
  const build = (ws, level, into) => {
    if (seen.has(ws.id)) return; // defensive: never loop on a cycle
    seen.add(ws.id);
    const kids = childrenOf(ws.id);
    const item = treeItem(ws, level, kids.length > 0);
    into.appendChild(item);
    if (kids.length) {
      const group = el('ul', 'tree-group');
      group.setAttribute('role', 'group');
      group.hidden = state.collapsed.has(ws.id);
      kids.forEach((k) => build(k, level + 1, group));
      item.appendChild(group);
    }
  };
  roots.forEach((r) => build(r, 1, tree));
  const live = Array.from(state.workspaces.values()).filter((w) => w.status !== 'removed').length;
  $('team-count').textContent = state.workspaces.size ? `(${live} active)` : '';
  $('team-empty').hidden = state.workspaces.size > 0;
  if (!tree.querySelector('[role="treeitem"][tabindex="0"]')) {
    const first = tree.querySelector('[role="treeitem"]');
    if (first) first.tabIndex = 0;
  }
  if (focusedId) {
    const again = tree.querySelector(`[role="treeitem"][data-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }
}

function treeItem(ws, level, hasChildren) {
  const li = el('li', 'tree-item');
  li.setAttribute('role', 'none');
  const row = el('div', 'node');
  row.setAttribute('role', 'treeitem');
  row.setAttribute('aria-level', String(level));
  row.setAttribute('aria-selected', String(ws.id === state.selected));
  if (hasChildren) row.setAttribute('aria-expanded', String(!state.collapsed.has(ws.id)));
  row.tabIndex = ws.id === state.selected ? 0 : -1;
  row.dataset.id = ws.id;
  row.dataset.testid = 'workspace';
  if (ws.status === 'removed') row.classList.add('is-removed');
  if (ws.id === state.selected) row.classList.add('is-selected');

  const top = el('div', 'node-top');
  if (hasChildren) {
    const toggle = el('span', 'twisty', state.collapsed.has(ws.id) ? '▸' : '▾');
    toggle.setAttribute('aria-hidden', 'true');
    toggle.addEventListener('click', (ev) => { ev.stopPropagation(); setExpanded(ws.id, state.collapsed.has(ws.id)); });
    top.appendChild(toggle);
  }
  top.appendChild(el('span', 'node-name', ws.name || shortId(ws.id)));
  const unread = state.unread.get(ws.id) || 0;
  if (unread > 0) {
    const u = el('span', 'unread', String(unread));
    u.setAttribute('aria-label', `${unread} new message${unread === 1 ? '' : 's'}`);
    top.appendChild(u);
  }
  top.appendChild(badge(ws.status, null, isSilent(ws)));
  row.appendChild(top);

  const meta = [ws.role, ws.status === 'removed' ? null : livenessText(ws)].filter(Boolean).join(' · ');
  const metaLine = el('div', 'node-meta', meta);
  metaLine.dataset.liveness = ws.id;
  row.appendChild(metaLine);

  const skills = skillsOf(ws);
  if (skills.length) {
    const ul = el('ul', 'skills');
    ul.setAttribute('aria-label', 'Skills');
    skills.slice(0, 6).forEach((s) => ul.appendChild(el('li', 'chip', s)));
    if (skills.length > 6) ul.appendChild(el('li', 'chip chip-more', `+${skills.length - 6}`));
    row.appendChild(ul);
  }

  row.addEventListener('click', () => emit('select', ws.id));
  row.addEventListener('keydown', onTreeKey);
  li.appendChild(row);
  return li;
}

function setExpanded(id, expanded) {
  if (expanded) state.collapsed.delete(id); else state.collapsed.add(id);
  renderTree();
  const row = $('team').querySelector(`[role="treeitem"][data-id="${CSS.escape(id)}"]`);
  if (row) { row.tabIndex = 0; row.focus(); }
}

function visibleItems() {
  return Array.from($('team').querySelectorAll('[role="treeitem"]')).filter((it) => it.offsetParent !== null || it === document.activeElement);
}

function onTreeKey(ev) {
  const row = ev.currentTarget;
  const items = visibleItems();
  const i = items.indexOf(row);
  const expanded = row.getAttribute('aria-expanded');
  let next = null;
  if (ev.key === 'ArrowDown') next = items[i + 1];
  else if (ev.key === 'ArrowUp') next = items[i - 1];
  else if (ev.key === 'Home') next = items[0];
  else if (ev.key === 'End') next = items[items.length - 1];
  else if (ev.key === 'ArrowRight') {
    if (expanded === 'false') { ev.preventDefault(); setExpanded(row.dataset.id, true); return; }
    if (expanded === 'true') next = items[i + 1];
  } else if (ev.key === 'ArrowLeft') {
    if (expanded === 'true') { ev.preventDefault(); setExpanded(row.dataset.id, false); return; }
    const parent = row.parentElement && row.parentElement.parentElement && row.parentElement.parentElement.closest('.tree-item');
    if (parent) next = parent.querySelector('[role="treeitem"]');
  } else if (ev.key === 'Enter' || ev.key === ' ') {
    ev.preventDefault();
    emit('select', row.dataset.id);
    return;
  }
  if (next) {
    ev.preventDefault();
    items.forEach((it) => { it.tabIndex = -1; });
    next.tabIndex = 0;
    next.focus();
  }
}

/** Refreshes only the "seen … ago" lines and badges (every second) without rebuilding the tree. */
export function tickLiveness() {
  document.querySelectorAll('[data-liveness]').forEach((line) => {
    const ws = state.workspaces.get(line.dataset.liveness);
    if (!ws) return;
    const text = [ws.role, ws.status === 'removed' ? null : livenessText(ws)].filter(Boolean).join(' · ');
    if (line.textContent !== text) line.textContent = text;
    const b = line.parentElement.querySelector('.node-top .badge');
    if (b) {
      const silent = isSilent(ws);
      if ((b.dataset.status === 'silent') !== silent) badge(ws.status, b, silent);
    }
  });
}
