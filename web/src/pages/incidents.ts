import { get, type Incident, type Page, type Violation } from '../api';
import { emptyState, h, mount } from '../dom';
import { subscribe, throttle } from '../events';
import { metricLabel, timeEl } from '../format';
import { openModal } from '../modal';
import { href, link, replaceParams, updateParams } from '../router';
import type { PageCtx } from '../page';
import { findingChip, loading, pageHead, severityBadge, showError, statusBadge } from '../ui';

// One row per incident: one change of a model on a host, led by the page that opened it. Its
// members are every other detector and rule marker that fired on the model-host meanwhile.

function duration(i: Incident): string {
  const end = i.resolved_at ?? Date.now();
  const s = Math.max(0, Math.round((end - i.opened_at) / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function what(i: Incident): string {
  return `${i.site} · ${i.host} · ${i.provider}/${i.model}${i.source && i.source !== 'probe' ? ` · ${i.source}` : ''}`;
}

function memberRow(v: Violation, lead: boolean): HTMLElement {
  return h('li', { testid: 'incident-member', dataset: { detector: v.detector ?? 'nelson', violationId: String(v.id), lead: String(lead) } },
    findingChip(v),
    h('span', null, metricLabel(v.metric)),
    severityBadge(v.severity),
    statusBadge(v.status === 'open' && v.acked_at ? 'acknowledged' : v.status),
    timeEl(v.opened_at),
    lead ? h('strong', { class: 'small' }, 'lead (opened the incident, notifies)') : null,
    link(href('/violations', { id: String(v.id) }), { testid: 'incident-member-link' }, 'Details'));
}

function detail(id: string, ctx: PageCtx, onClose: () => void): void {
  const m = openModal({ title: 'Incident', content: loading(), testid: 'incident-modal', wide: true, onClose });
  void get<Incident>(`incidents/${encodeURIComponent(id)}`, undefined, ctx.signal)
    .then((i) => {
      m.el.querySelector('h2')?.replaceChildren(`${i.title} — ${i.model}`);
      mount(m.body,
        h('div', { class: 'detail-head' }, statusBadge(i.status, 'incident-status'), ' ', severityBadge(i.severity, 'incident-severity'), h('span', { class: 'muted' }, ` ${what(i)}`)),
        h('p', null, `Opened `, timeEl(i.opened_at), i.resolved_at ? [' · resolved ', timeEl(i.resolved_at)] : ' · still open', ` · ${duration(i)} · ${i.pages} page${i.pages === 1 ? '' : 's'} · metrics: ${i.metrics.map(metricLabel).join(', ')}`),
        h('h3', null, `Members (${i.members.length + 1})`),
        h('ul', { class: 'member-list', testid: 'incident-members' }, memberRow(i.lead, true), ...i.members.map((v) => memberRow(v, false))),
        h('p', { class: 'small muted' }, 'Only the lead notifies; acknowledging or resolving the lead acts on the whole incident.'),
        h('div', { class: 'actions' },
          link(href('/series', { key: i.lead.key, site: i.site, window: 'custom', from: i.opened_at - 30 * 60_000, to: (i.resolved_at ?? Date.now()) + 10 * 60_000 }), { class: 'btn', testid: 'incident-chart' }, 'Open the control chart'),
          link(href('/violations', { id: String(i.lead.id) }), { class: 'btn btn-primary', testid: 'incident-lead' }, 'Acknowledge or resolve…')));
    })
    .catch((e) => {
      if ((e as Error).name !== 'AbortError') showError(m.body, e);
    });
}

export async function incidentsPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const status = ctx.params.get('status') ?? '';
  const tableSlot = h('div', { class: 'card' }, loading());
  const statusSel = h('select', { testid: 'incident-status-filter', 'aria-label': 'Status', on: { change: (e) => updateParams({ status: (e.target as HTMLSelectElement).value || null, id: null }) } },
    ...[['', 'Any status'], ['open', 'Open'], ['acknowledged', 'Acknowledged'], ['resolved', 'Resolved']].map(([v, l]) => h('option', { value: v, selected: v === status }, l)));
  view.append(
    pageHead('Incidents', 'One row per change of a model on a host: the page that opened it, with every detector and rule marker that fired meanwhile. Only incidents notify.',
      h('label', { class: 'field field-inline' }, h('span', { class: 'field-label' }, 'Status'), statusSel)),
    tableSlot);

  const load = async () => {
    try {
      const page = await get<Page<Incident>>('incidents', { site: ctx.site, status, limit: 100 }, ctx.signal);
      if (!page.items.length) {
        mount(tableSlot, emptyState('No incidents — nothing has paged.', ['Incidents open when a paging detector fires: a sustained shift, a model down, its error rate up, or silence. ',
          link(href('/settings', { tab: 'detection' }), null, 'Settings → Detection'), ' shows how rarely a healthy fleet pages.'], 'incidents-empty'));
        return;
      }
      mount(tableSlot, h('div', { class: 'table-scroll' }, h('table', { class: 'table', testid: 'incidents-table' },
        h('thead', null, h('tr', null, ...['Opened', 'Status', 'Severity', 'Model-host', 'What', 'Members', 'Duration', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, ...page.items.map((i) => {
          const open = h('button', { class: 'link-btn', type: 'button', testid: 'incident-open', on: { click: () => { replaceParams({ id: i.id }); detail(i.id, ctx, () => replaceParams({ id: null })); } } }, 'Details');
          return h('tr', { testid: 'incident-row', dataset: { incidentId: i.id, status: i.status } },
            h('td', null, timeEl(i.opened_at)),
            h('td', null, statusBadge(i.status)),
            h('td', null, severityBadge(i.severity)),
            h('td', null, what(i)),
            h('td', null, findingChip(i.lead), i.detectors.length > 1 ? h('span', { class: 'small muted' }, ` + ${i.detectors.filter((d) => d !== i.lead.detector).join(', ')}`) : null),
            h('td', { class: 'num', testid: 'incident-member-count' }, String(i.members.length + 1)),
            h('td', null, duration(i)),
            h('td', null, open));
        })))));
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(tableSlot, e);
    }
  };
  await load();
  const initial = ctx.params.get('id');
  if (initial) detail(initial, ctx, () => replaceParams({ id: null }));
  const t = throttle(() => void load(), 5000);
  ctx.onCleanup(t.cancel);
  ctx.onCleanup(subscribe({ violation: () => t.call() }));
}
