// Dialogs: create a workspace, delete one (with the cascade confirmation the CLI asks for), and the once-shown
// token with a copy-ready connection line per MCP client (the platform's wording, from the answer).
import { state, $, el, clear, api, emit, on, nameOf, liveDescendants, copyText } from './core.js';

/** Renders a freshly minted token and its connection lines into `box` (shown once: nothing keeps them). */
export function showOnce(box, answer) {
  clear(box);
  box.hidden = false;
  box.appendChild(el('p', 'once-warning', answer.message || ''));
  const row = el('div', 'once-token');
  const token = el('input', 'mono');
  token.readOnly = true;
  token.value = answer.auth_token || '';
  token.setAttribute('aria-label', 'New token');
  token.dataset.testid = 'once-token';
  row.appendChild(token);
  row.appendChild(copyButton('Copy token', () => token.value, 'copy-token'));
  box.appendChild(row);
  (Array.isArray(answer.connection_lines) ? answer.connection_lines : []).forEach((s) => {
    const section = el('section', 'snippet');
    section.dataset.testid = 'snippet-' + s.key;
    const head = el('div', 'snippet-head');
    head.appendChild(el('h4', null, s.title));
    head.appendChild(copyButton('Copy', () => s.text, 'copy-' + s.key));
    section.appendChild(head);
    const pre = el('pre', 'snippet-text mono', s.text);
    pre.tabIndex = 0;
    section.appendChild(pre);
    box.appendChild(section);
  });
}

function copyButton(label, text, testid) {
  const b = el('button', 'small', label);
  b.type = 'button';
  b.dataset.testid = testid;
  b.addEventListener('click', async () => {
    const ok = await copyText(text());
    b.textContent = ok ? 'Copied' : 'Select and copy by hand';
    setTimeout(() => { b.textContent = label; }, 2500);
  });
  return b;
}

// ------------------------------------------------------------------ create

function openCreate() {
  const dialog = $('create-dialog');
  $('create-title').textContent = 'New workspace';
  $('create-form').reset();
  $('create-form').hidden = false;
  $('create-error').textContent = '';
  $('create-result').hidden = true;
  $('create-done').hidden = true;
  const parent = $('create-parent');
  clear(parent);
  parent.appendChild(el('option', null, '— none (a root workspace)'));
  parent.firstChild.value = '';
  Array.from(state.workspaces.values()).filter((w) => w.status !== 'removed').forEach((w) => {
    const o = el('option', null, w.name || nameOf(w.id));
    o.value = w.id;
    if (w.id === state.selected) o.selected = true;
    parent.appendChild(o);
  });
  dialog.showModal();
  $('create-name').focus();
}

async function submitCreate(ev) {
  ev.preventDefault();
  const body = { name: $('create-name').value.trim(), platform_url: window.location.origin };
  const role = $('create-role').value.trim();
  const skills = $('create-skills').value.split(',').map((s) => s.trim()).filter(Boolean);
  const description = $('create-description').value.trim();
  if (role) body.role = role;
  if ($('create-parent').value) body.parent_id = $('create-parent').value;
  if (skills.length) body.skills = skills;
  if (description) body.description = description;
  $('create-error').textContent = '';
  try {
    const created = await api('POST', '/workspaces', body);
    emit('workspace', created);
    $('create-form').hidden = true;
    $('create-title').textContent = `Workspace “${created.name}” created`;
    showOnce($('create-result'), created);
    $('create-done').hidden = false;
    $('create-done').focus();
    emit('select', created.id);
  } catch (e) {
    $('create-error').textContent = 'Not created: ' + e.message;
  }
}

// ------------------------------------------------------------------ delete

let deleting = null; // { id, cascade }

function describeCascade(children) {
  const list = $('delete-children');
  clear(list);
  children.forEach((c) => list.appendChild(el('li', null, c.name || nameOf(c.id))));
  $('delete-cascade').hidden = children.length === 0;
  $('delete-count').textContent = String(children.length);
}

function openDelete(id) {
  const ws = state.workspaces.get(id);
  if (!ws || ws.status === 'removed') return;
  const children = liveDescendants(id);
  deleting = { id, cascade: children.length > 0 };
  $('delete-name').textContent = ws.name || nameOf(id);
  describeCascade(children);
  $('delete-error').textContent = '';
  $('delete-dialog').showModal();
  $('delete-cancel').focus();
}

async function confirmDelete(ev) {
  ev.preventDefault();
  if (!deleting) return;
  const { id, cascade } = deleting;
  try {
    const answer = await api('DELETE', `/workspaces/${encodeURIComponent(id)}${cascade ? '?confirm=true' : ''}`);
    $('delete-dialog').close();
    deleting = null;
    emit('deleted', { id, answer });
  } catch (e) {
    if (e.status === 409 && e.body && Array.isArray(e.body.children)) {
      // children appeared meanwhile: show them and ask again
      deleting = { id, cascade: true };
      describeCascade(e.body.children);
      $('delete-error').textContent = 'It has live children now; confirm again to delete them too.';
    } else {
      $('delete-error').textContent = 'Not deleted: ' + e.message;
    }
  }
}

export function initDialogs() {
  $('new-workspace').addEventListener('click', openCreate);
  $('create-form').addEventListener('submit', submitCreate);
  $('create-cancel').addEventListener('click', () => $('create-dialog').close());
  // the token is not kept: gone at once on Done (the dialog's close event comes a task later), and on Escape too
  $('create-done').addEventListener('click', () => { clear($('create-result')); $('create-dialog').close(); });
  $('create-dialog').addEventListener('close', () => clear($('create-result')));
  $('delete-form').addEventListener('submit', confirmDelete);
  $('delete-cancel').addEventListener('click', () => $('delete-dialog').close());
  on('delete', openDelete);
}
