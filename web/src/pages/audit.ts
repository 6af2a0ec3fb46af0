// The audit log (admins only): every change — who, with which role, from where, when, what,
// before → after. Filters live in the URL; older entries load page by page; CSV exports the
// filter.

import { get, url, type AuditEntry } from '../api';
import { emptyState, field, h, mount } from '../dom';
import { fromLocalInput, timeEl, toLocalInput } from '../format';
import { updateParams } from '../router';
import type { PageCtx } from '../page';
import { card, loading, pageHead, showError } from '../ui';

const ACTIONS = ['', 'auth.', 'user.', 'token.', 'channel.', 'route.', 'silence.', 'violation.', 'baseline.', 'rules.', 'site.'];

function changeCell(e: AuditEntry): HTMLElement {
  if (e.before == null && e.after == null) return h('span', { class: 'muted' }, '—');
  const text = (v: unknown) => (v == null ? '∅' : JSON.stringify(v, null, 1));
  return h('details', { class: 'audit-change' },
    h('summary', null, e.before == null ? 'created' : e.after == null ? 'removed' : 'changed'),
    h('div', { class: 'audit-diff' },
      h('pre', { class: 'code small', testid: 'audit-before' }, text(e.before)),
      h('span', { class: 'muted' }, '→'),
      h('pre', { class: 'code small', testid: 'audit-after' }, text(e.after))));
}

export async function auditPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const p = ctx.params;
  const filters = {
    actor: p.get('actor') ?? '',
    action: p.get('action') ?? '',
    target: p.get('target') ?? '',
    from: p.get('from') ?? '',
    to: p.get('to') ?? '',
  };
  const actor = h('input', { type: 'text', testid: 'audit-actor', value: filters.actor, placeholder: 'email or token:…' });
  const action = h('select', { testid: 'audit-action' }, ...ACTIONS.map((a) => h('option', { value: a, selected: a === filters.action }, a ? `${a}*` : 'any action')));
  action.value = filters.action;
  const target = h('input', { type: 'text', testid: 'audit-target', value: filters.target, placeholder: 'contains…' });
  const from = h('input', { type: 'datetime-local', testid: 'audit-from', value: filters.from ? toLocalInput(Number(filters.from)) : '' });
  const to = h('input', { type: 'datetime-local', testid: 'audit-to', value: filters.to ? toLocalInput(Number(filters.to)) : '' });
  const apply = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'audit-apply' }, 'Apply');
  const form = h('form', { class: 'filters', testid: 'audit-filters' },
    field('Who', actor), field('Action', action), field('Target', target), field('From', from), field('To', to), h('div', { class: 'actions' }, apply));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    updateParams({
      actor: actor.value.trim(), action: action.value, target: target.value.trim(),
      from: from.value ? String(fromLocalInput(from.value) ?? '') : '', to: to.value ? String(fromLocalInput(to.value) ?? '') : '',
    });
  });
  const q = { actor: filters.actor, action: filters.action, target: filters.target, from: filters.from, to: filters.to };
  const csv = h('a', { class: 'btn', href: url('audit.csv', q), download: 'audit.csv', testid: 'audit-csv' }, 'CSV');
  view.append(pageHead('Audit log', 'Every change: who, with which role, from where, before → after. Kept for auth.audit_retention (90 days by default).', csv), form);
  const body = h('tbody');
  const slot = h('div', null, loading());
  const more = h('button', { class: 'btn', type: 'button', testid: 'audit-more', hidden: true }, 'Older entries');
  view.append(card(null, slot, h('div', { class: 'actions' }, more)));
  let cursor: string | null = null;
  const page = async () => {
    try {
      const r = await get<{ items: AuditEntry[]; next_cursor: string | null }>('audit', { ...q, limit: 100, cursor }, ctx.signal);
      if (!cursor && !r.items.length) {
        mount(slot, emptyState('Nothing recorded for this filter.', 'Changes made in the dashboard, the API or the CLI appear here.', 'audit-empty'));
        return;
      }
      if (!cursor) {
        mount(slot, h('div', { class: 'table-scroll' }, h('table', { class: 'table', testid: 'audit-table' },
          h('thead', null, h('tr', null, ...['When', 'Who', 'Role', 'From', 'Action', 'Target', 'Change'].map((t) => h('th', { scope: 'col' }, t)))), body)));
      }
      body.append(...r.items.map((e) => h('tr', { testid: 'audit-row', dataset: { action: e.action, actor: e.actor } },
        h('td', null, timeEl(e.at)), h('td', null, e.actor), h('td', null, e.role), h('td', { class: 'mono small' }, e.client),
        h('td', null, h('span', { class: 'chip' }, e.action)), h('td', { class: 'mono small' }, e.target), h('td', null, changeCell(e)))));
      cursor = r.next_cursor;
      more.hidden = !cursor;
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(slot, e);
    }
  };
  more.addEventListener('click', () => void page());
  await page();
}
