// Approvals (spec §7.2: POST /workspaces/:id/approvals) in the Requests view: read from GET /admin/approvals, shown
// as items of the same list (marked "approval", data-type="approval"), decided by the user — Approve / Deny through
// POST /admin/approvals/:id/decide (decided_by "user"). Kept live by the APPROVAL_* events (live.js).
import { api, nameOf } from './core.js';

/** The prefix of an approval's item id (request ids are plain UUIDs). */
const PREFIX = 'approval:';

export const APPROVAL_LABELS = { denied: 'denied', withdrawn: 'withdrawn' };

export const isApproval = (item) => item.type === 'approval';

/** An approval as an item of the Requests list: the request fields the list, filters and counts read. */
export function fromApproval(a) {
  return {
    type: 'approval',
    id: PREFIX + a.id,
    approval_id: a.id,
    kind: 'approval',
    source: 'approval',
    requester_type: 'agent',
    requester_id: a.workspace_id,
    recipient_type: 'user',
    recipient_id: null,
    title: a.action,
    detail: detailOf(a),
    status: a.status,
    priority: 'normal',
    created_at: a.created_at,
    decided_by: a.decided_by,
    decided_at: a.decided_at,
  };
}

function detailOf(a) {
  const parts = [];
  if (a.reason) parts.push(a.reason);
  if (a.task_id) parts.push('task: ' + a.task_id);
  if (a.context) parts.push('context: ' + a.context);
  return parts.join('\n');
}

/** Every approval of the team as list items (none when the platform has no such route). */
export async function loadApprovals() {
  const answer = await api('GET', '/admin/approvals');
  return answer && Array.isArray(answer.approvals) ? answer.approvals.map(fromApproval) : [];
}

export const approvalAnswers = () => [['approved', 'Approve'], ['denied', 'Deny']];

/** The user's decision on an approval item. */
export function decideApproval(item, decision) {
  return api('POST', '/admin/approvals/' + encodeURIComponent(item.approval_id) + '/decide', { decision });
}

/** The thread's meta line of an approval. */
export function approvalMeta(item, fmtTime) {
  const parts = [`approval asked by ${nameOf(item.requester_id)}`, `asked ${fmtTime(item.created_at)}`];
  if (item.decided_at) {
    const by = item.decided_by === 'user' ? 'you' : (item.decided_by === item.requester_id ? nameOf(item.decided_by) : item.decided_by);
    parts.push(`${item.status === 'withdrawn' ? 'withdrawn' : 'decided'} by ${by} ${fmtTime(item.decided_at)}`);
  }
  return parts.join(' · ');
}

export const approvalNote = (item) =>
  `Approve lets ${nameOf(item.requester_id)} go ahead with this action; Deny stops it.`;
