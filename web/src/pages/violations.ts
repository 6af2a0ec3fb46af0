import {
  can,
  currentMe,
  get,
  mutate,
  url,
  violationStatus,
  type HostInfo,
  type ModelInfo,
  type Page,
  type PointsResp,
  type SiteInfo,
  type ServerAt,
  type Telemetry,
  type Violation,
  type ViolationDetail,
} from '../api';
import { centerLine, controlChart, serverLabel, serverMetricName, serverValueText, type ChartHandle } from '../charts';
import { emptyState, h, mount, notice } from '../dom';
import { subscribe, throttle } from '../events';
import { fmtBytes, fmtNum, fmtValue, fromLocalInput, metricLabel, METRICS, timeEl, toLocalInput, utcText } from '../format';
import { openModal } from '../modal';
import { href, link, replaceParams, updateParams } from '../router';
import { rule, RULES } from '../rules';
import type { PageCtx } from '../page';
import { DETECTORS, findingChip, loading, pageHead, severityBadge, showError, statusBadge, withButton } from '../ui';

const FILTERS = ['host', 'model', 'metric', 'detector', 'severity', 'rule', 'status', 'incident', 'from', 'to'] as const;

// Cursors of the pages before the current one, for "Previous" (reset when filters change).
let cursorStack: string[] = [];
let stackFilter = '';

export async function violationsPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const p = ctx.params;
  const filters: Record<string, string> = {};
  for (const k of FILTERS) filters[k] = p.get(k) ?? '';
  if (!p.has('status')) filters.status = '';
  const limit = Number(p.get('limit') ?? 50) || 50;
  const cursor = p.get('cursor') ?? '';
  const filterSig = JSON.stringify([ctx.site, filters, limit]);
  if (filterSig !== stackFilter) {
    cursorStack = [];
    stackFilter = filterSig;
  }
  const apiFilters = { site: ctx.site, ...filters, from: filters.from, to: filters.to };
  const csvHref = url('violations.csv', apiFilters);

  const filterBar = h('form', { class: 'filters', testid: 'violation-filters' });
  const tableSlot = h('div', { class: 'card' }, loading());
  view.append(
    pageHead('Violations', 'Each row is an episode on one series, from its first flagged point until it resolved: a paging detector (a sustained shift, the model down, its error rate up, silence) or a Nelson rule marking the chart. Pages are grouped into incidents.',
      h('a', { class: 'btn', href: csvHref, download: '', testid: 'violations-csv' }, 'Download CSV')),
    filterBar,
    tableSlot,
  );

  // Filter bar. The site filter is the global site selector.
  const sel = (name: string, label: string, options: Array<[string, string]>, value: string, onChange: (v: string) => void) => {
    const s = h('select', { testid: `filter-${name}`, 'aria-label': label, on: { change: (e) => onChange((e.target as HTMLSelectElement).value) } },
      ...options.map(([v, l]) => h('option', { value: v, selected: v === value }, l)));
    return h('label', { class: 'field field-inline' }, h('span', { class: 'field-label' }, label), s);
  };
  const set = (k: string) => (v: string) => updateParams({ [k]: v || null, cursor: null, id: null });
  const [sites, hosts, models] = await Promise.all([
    get<SiteInfo[]>('sites', undefined, ctx.signal).catch(() => [] as SiteInfo[]),
    get<HostInfo[]>('hosts', { site: ctx.site }, ctx.signal).catch(() => [] as HostInfo[]),
    get<ModelInfo[]>('models', { site: ctx.site }, ctx.signal).catch(() => [] as ModelInfo[]),
  ]);
  if (ctx.signal.aborted) return;
  const uniq = (xs: string[]) => Array.from(new Set(xs)).sort();
  const fromIn = h('input', { type: 'datetime-local', testid: 'filter-from', 'aria-label': 'From', value: filters.from ? toLocalInput(Number(filters.from)) : '' });
  const toIn = h('input', { type: 'datetime-local', testid: 'filter-to', 'aria-label': 'To', value: filters.to ? toLocalInput(Number(filters.to)) : '' });
  const onTime = () => updateParams({ from: fromLocalInput(fromIn.value), to: fromLocalInput(toIn.value), cursor: null, id: null });
  fromIn.addEventListener('change', onTime);
  toIn.addEventListener('change', onTime);
  mount(filterBar,
    sel('site', 'Site', [['', 'All sites'], ...uniq([...sites.map((s) => s.name), ...(ctx.site ? [ctx.site] : [])]).map((s): [string, string] => [s, s])], ctx.site,
      (v) => updateParams({ site: v, host: null, cursor: null, id: null })),
    sel('host', 'Host', [['', 'All hosts'], ...uniq([...hosts.map((x) => x.host), ...(filters.host ? [filters.host] : [])]).map((x): [string, string] => [x, x])], filters.host!, set('host')),
    sel('model', 'Model', [['', 'All models'], ...uniq([...models.map((m) => m.model), ...(filters.model ? [filters.model] : [])]).map((m): [string, string] => [m, m])], filters.model!, set('model')),
    sel('metric', 'Metric', [['', 'All metrics'], ...METRICS], filters.metric!, set('metric')),
    sel('detector', 'Detector', [['', 'All detectors'], ['nelson', 'Nelson rules (markers)'], ...Object.entries(DETECTORS).map(([k, d]): [string, string] => [k, d.name])], filters.detector!, set('detector')),
    sel('severity', 'Severity', [['', 'Any severity'], ['critical', 'critical (page)'], ['error', 'error (page)'], ['warning', 'warning'], ['info', 'info']], filters.severity!, set('severity')),
    sel('rule', 'Rule', [['', 'All rules'], ...RULES.map((r): [string, string] => [String(r.n), `${r.n} · ${r.name}`])], filters.rule!, set('rule')),
    sel('status', 'Status', [['', 'Any status'], ['open', 'Open'], ['acknowledged', 'Acknowledged'], ['resolved', 'Resolved']], filters.status!, set('status')),
    h('label', { class: 'field field-inline' }, h('span', { class: 'field-label' }, 'From'), fromIn),
    h('label', { class: 'field field-inline' }, h('span', { class: 'field-label' }, 'To'), toIn),
    h('button', { class: 'btn btn-ghost', type: 'button', testid: 'filter-reset', on: { click: () => updateParams(Object.fromEntries([...FILTERS, 'cursor', 'id'].map((k) => [k, null]))) } }, 'Reset'),
  );

  let items: Violation[] = [];
  let next: string | null = null;
  const rowFor = new Map<string, HTMLTableRowElement>();

  const renderRow = (v: Violation): HTMLTableRowElement => {
    const open = h('button', { class: 'link-btn', type: 'button', testid: 'violation-open', on: { click: () => openDetail(String(v.id), open) } }, 'Details');
    const tr = h('tr', { testid: 'violation-row', dataset: { violationId: String(v.id), status: violationStatus(v) }, class: 'clickable' },
      h('td', null, timeEl(v.opened_at)),
      h('td', null, v.site),
      h('td', null, v.host),
      h('td', { class: 'model-cell' }, h('span', { class: 'muted' }, `${v.provider}/`), v.model),
      h('td', null, metricLabel(v.metric)),
      h('td', null, findingChip(v)),
      h('td', null, severityBadge(v.severity, 'violation-row-severity')),
      h('td', null, v.incident_id ? link(href('/incidents', { id: String(v.incident_id) }), { testid: 'violation-incident', title: 'the incident this belongs to' }, String(v.incident_id) === String(v.id) ? 'leads' : 'member') : h('span', { class: 'muted' }, '—')),
      h('td', null, statusBadge(violationStatus(v), 'violation-row-status')),
      h('td', null, v.acked_by ?? h('span', { class: 'muted' }, '—')),
      h('td', null, open),
    );
    tr.addEventListener('click', (ev) => {
      if ((ev.target as Element).closest('a,button')) return;
      openDetail(String(v.id), open);
    });
    return tr;
  };

  const renderTable = () => {
    rowFor.clear();
    if (!items.length) {
      const any = FILTERS.some((k) => filters[k]) || ctx.site;
      mount(tableSlot, any
        ? emptyState('No violation matches these filters.', 'Widen the time range or reset the filters.', 'violations-empty')
        : emptyState('No violations — every series is in control.', ['When a detector or a Nelson rule fires it appears here. Route alerts to your team under ', link(href('/settings', { tab: 'channels' }), null, 'Settings → Channels'), '.'], 'violations-empty'));
      return;
    }
    const rows = items.map((v) => {
      const r = renderRow(v);
      rowFor.set(String(v.id), r);
      return r;
    });
    const prev = h('button', { class: 'btn btn-small', type: 'button', testid: 'page-prev', disabled: !cursor, on: { click: () => updateParams({ cursor: cursorStack.pop() ?? null }) } }, '← Previous');
    const nextBtn = h('button', { class: 'btn btn-small', type: 'button', testid: 'page-next', disabled: !next, on: { click: () => { cursorStack.push(cursor); updateParams({ cursor: next }); } } }, 'Next →');
    const limitSel = h('select', { testid: 'page-limit', 'aria-label': 'Rows per page', on: { change: (e) => updateParams({ limit: (e.target as HTMLSelectElement).value, cursor: null }) } },
      ...[25, 50, 100, 250].map((n) => h('option', { value: String(n), selected: n === limit }, `${n} per page`)));
    mount(tableSlot,
      h('div', { class: 'table-scroll' }, h('table', { class: 'table', testid: 'violations-table' },
        h('thead', null, h('tr', null, ...['Opened', 'Site', 'Host', 'Model', 'Metric', 'Finding', 'Severity', 'Incident', 'Status', 'Acknowledged by', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, ...rows))),
      h('div', { class: 'pager' }, h('span', { class: 'muted small', testid: 'page-info' }, `${items.length} shown${next ? ', more on the next page' : ''}`), h('div', { class: 'pager-btns' }, limitSel, prev, nextBtn)));
  };

  const load = async () => {
    try {
      const page = await get<Page<Violation>>('violations', { ...apiFilters, limit, cursor }, ctx.signal);
      items = page.items;
      next = page.next_cursor;
      renderTable();
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(tableSlot, e);
    }
  };

  const updated = (v: Violation) => {
    const i = items.findIndex((x) => String(x.id) === String(v.id));
    if (i >= 0) {
      items[i] = { ...items[i]!, ...v };
      const old = rowFor.get(String(v.id));
      const row = renderRow(items[i]!);
      rowFor.set(String(v.id), row);
      old?.replaceWith(row);
    }
  };

  const openDetail = (id: string, opener?: HTMLElement) => {
    replaceParams({ id });
    opener?.focus();
    detailModal(id, ctx, updated, () => replaceParams({ id: null }));
  };

  await load();
  const initial = p.get('id');
  if (initial) openDetail(initial, rowFor.get(initial)?.querySelector('button') ?? undefined);

  const t = throttle(() => void load(), 5000);
  ctx.onCleanup(t.cancel);
  ctx.onCleanup(subscribe({ violation: () => t.call() }));
}

function describeSeries(v: Violation): string {
  return `${v.site} · ${v.host} · ${v.provider}/${v.model} · ${metricLabel(v.metric)}`;
}

/** The detail of one violation, in a keyboard-usable modal. */
function detailModal(id: string, ctx: PageCtx, onUpdate: (v: Violation) => void, onClose: () => void): void {
  let chart: ChartHandle | null = null;
  const m = openModal({
    title: `Violation ${id}`,
    content: loading(),
    testid: 'violation-modal',
    wide: true,
    onClose: () => {
      chart?.destroy();
      onClose();
    },
  });
  const titleEl = m.el.querySelector('h2')!;

  const render = (v: ViolationDetail) => {
    const det = v.detector && v.detector !== 'nelson' ? DETECTORS[v.detector] : undefined;
    const info = det ? { ...rule(0), name: det.name, color: det.color, text: det.text } : rule(v.rule);
    titleEl.replaceChildren(det ? `${v.rule_name ?? det.name}` : `Rule ${v.rule} · ${v.rule_name ?? info.name}`);
    const status = violationStatus(v);
    const note = h('input', { type: 'text', testid: 'ack-note', 'aria-label': 'Note', placeholder: 'Note (optional): what you found or did' });
    const msg = h('div', { testid: 'violation-action-msg', 'aria-live': 'polite' });
    const act = (what: 'ack' | 'resolve') => async (ev: Event) => {
      const btn = ev.currentTarget as HTMLButtonElement;
      // the signed-in user is recorded as who did it
      const res = await withButton(btn, msg, () => mutate<Violation>('POST', `violations/${encodeURIComponent(id)}/${what}`, { note: note.value.trim() || null }));
      if (res) {
        const merged = { ...v, ...res };
        onUpdate(merged);
        render(merged);
        m.body.querySelector<HTMLElement>('[data-testid=violation-action-msg]')?.replaceChildren(
          notice('ok', what === 'ack' ? `Acknowledged by ${merged.acked_by ?? 'you'}.` : 'Resolved.', 'violation-action-ok'));
      }
    };
    const ackBtn = h('button', { class: 'btn btn-primary', type: 'button', testid: 'violation-ack', disabled: status !== 'open', on: { click: act('ack') } }, 'Acknowledge');
    const resolveBtn = h('button', { class: 'btn', type: 'button', testid: 'violation-resolve', disabled: status === 'resolved', on: { click: act('resolve') } }, 'Resolve');

    const kv = (k: string, val: Node | string) => h('div', { class: 'kv-item' }, h('div', { class: 'kv-k' }, k), h('div', { class: 'kv-v' }, val));
    const pad = 30 * 60_000;
    const seriesLink = link(href('/series', { key: v.key, site: v.site, window: 'custom', from: v.opened_at - pad, to: (v.resolved_at ?? v.last_point_at ?? v.opened_at) + pad }), { testid: 'violation-series-link' }, 'Open the control chart');

    const chartEl = h('div', { class: 'chart chart-small', testid: 'violation-chart' });
    const chartSlot = h('div', null, chartEl);
    const b = v.baseline ?? null;
    const ctxPoints = v.context?.points ?? [];

    mount(m.body,
      h('div', { class: 'detail-head' }, statusBadge(status, 'violation-status'), h('span', { class: 'muted' }, describeSeries(v))),
      h('div', { class: 'rule-explain', style: { borderLeftColor: info.color } },
        h('div', { class: 'rule-explain-title' }, findingChip(v), ' ', severityBadge(v.severity, 'violation-severity'),
          v.incident_id ? [' ', link(href('/incidents', { id: String(v.incident_id) }), { testid: 'violation-incident-link' }, String(v.incident_id) === String(v.id) ? 'leads its incident' : 'part of an incident')] : null),
        h('p', { testid: 'rule-text' }, plainRuleText(v))),
      h('div', { class: 'kv-grid' },
        kv('Opened', timeEl(v.opened_at)),
        kv('Last flagged point', timeEl(v.last_point_at)),
        kv('Resolved', timeEl(v.resolved_at)),
        kv('Acknowledged', v.acked_by ? h('span', null, `${v.acked_by} · `, timeEl(v.acked_at), v.ack_note ? h('div', { class: 'muted small' }, v.ack_note) : null) : h('span', { class: 'muted' }, 'not yet'))),
      h('h3', null, 'The points around it (±10)'),
      chartSlot,
      h('div', { class: 'two-col' },
        det && v.detector !== 'cusum'
          ? h('div', null, h('h3', null, 'Reference'), referenceText(v))
          : h('div', null, h('h3', null, 'Baseline in force (frozen)'), baselineTable(b, v.metric)),
        h('div', null, h('h3', null, 'Host telemetry at the time'), telemetryAt(v.context?.telemetry ?? null, v.opened_at),
          serverAt(v.context?.server_at_open ?? null))),
      can('editor')
        ? h('div', { class: 'action-box' },
          h('div', { class: 'action-fields' }, note),
          h('div', { class: 'actions' }, seriesLink, resolveBtn, ackBtn),
          msg)
        : h('div', { class: 'action-box' },
          h('p', { class: 'muted small', testid: 'violation-readonly' }, `Acknowledging and resolving need the editor role; you are ${currentMe()?.role ?? 'a viewer'}.`),
          h('div', { class: 'actions' }, seriesLink)),
    );

    chart?.destroy();
    chart = null;
    if (ctxPoints.length) {
      const qualifying = new Set((v.points ?? []).map((p) => p.ts));
      const ts = ctxPoints.map((p) => p.ts);
      const span = Math.max(ts[ts.length - 1]! - ts[0]!, 1000);
      const resp: PointsResp = {
        key: v.key,
        baseline: b,
        downsampled: false,
        points: ctxPoints.map((p) => ({ ts: p.ts, value: p.value })),
        flagged: det ? [] : ctxPoints.filter((p) => p.ts === v.opened_at || p.ts === v.last_point_at).map((p) => ({ ts: p.ts, value: p.value, rules: [v.rule], violation_id: v.id })),
        alarms: det ? [{ violation_id: String(v.id), incident_id: v.incident_id ?? null, detector: v.detector ?? '', severity: v.severity ?? '', title: v.rule_name ?? det.name, from: v.opened_at, to: v.resolved_at, last_point_at: v.last_point_at ?? v.opened_at }] : [],
      };
      requestAnimationFrame(() => {
        if (!chartEl.isConnected) return;
        chart = controlChart(chartEl, resp, { from: ts[0]! - span * 0.04, to: ts[ts.length - 1]! + span * 0.04, metric: v.metric, label: metricLabel(v.metric), height: 220, highlight: qualifying });
      });
      chartSlot.append(h('p', { class: 'small muted' }, 'Rings mark the points that make up the rule’s window; filled markers are the first and the last flagged points.'));
    } else {
      chartEl.replaceWith(emptyState('No points around this violation are stored any more.', 'Retention may have removed them; the frozen baseline below is kept.', 'violation-chart-empty'));
    }
  };

  void get<ViolationDetail>(`violations/${encodeURIComponent(id)}`, undefined, ctx.signal)
    .then(render)
    .catch((e) => {
      if ((e as Error).name !== 'AbortError') showError(m.body, e);
    });
}

function plainRuleText(v: Violation): string {
  const t = (v.rule_text ?? '').trim();
  if (!t) return v.detector && v.detector !== 'nelson' ? (DETECTORS[v.detector]?.text ?? '') : rule(v.rule).text;
  // The API's text starts lower-case ("9 points in a row…"): make it a sentence.
  const s = t.charAt(0).toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

/** What a call-level detector compared against (its "baseline" is a reference and a limit). */
function referenceText(v: ViolationDetail): HTMLElement {
  const b = v.baseline;
  const c = b ? centerLine(b) : null;
  const text: Record<string, string> = {
    down: `Calls fail in a row: a page at ${b ? fmtNum(b.ucl) : '3'} failed calls. The failed calls are the points above.`,
    error_rate: `The failure rate judged against ${c === null ? '1 %' : `${fmtNum(c * 100)} %`}; designed to catch a rise to ${b ? `${fmtNum(b.ucl * 100)} %` : '10 %'}.`,
    silent: `Calls came every ${c === null ? '?' : `${fmtNum(c / 1000)} s`} (median); silent after ${b ? `${fmtNum(b.ucl / 1000)} s` : '2 minutes'} without one.`,
    agent_silent: `No telemetry for ${b ? `${fmtNum(b.ucl / 1000)} s` : '2 minutes'}.`,
    slo_burn: `The error budget burned ${fmtNum(v.points?.[0]?.value ?? null)}× faster than it lasts the window; the alert fires at ${b ? fmtNum(b.ucl) : '14.4'}× (${v.rule === 1 ? 'fast: 1 h and 5 min' : 'slow: 6 h and 30 min'}).`,
    budget: `The month's cost forecast was ${fmtNum(v.points?.[0]?.value ?? null)} against a budget of ${b ? fmtNum(b.ucl) : '?'} (spent so far ${c === null ? '?' : fmtNum(c)}).`,
  };
  return h('p', { testid: 'violation-reference' }, text[v.detector ?? ''] ?? '—');
}

function baselineTable(b: ViolationDetail['baseline'], metric: string): HTMLElement {
  if (!b) return emptyState('No baseline was recorded.', '—', 'violation-baseline-empty');
  const row = (k: string, val: string) => h('tr', null, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, val));
  return h('table', { class: 'kv', testid: 'violation-baseline' },
    row('Centre', fmtValue(metric, centerLine(b))),
    row('Sigma', b.transform === 'log' ? `${fmtNum(b.sigma)} (log scale)` : fmtValue(metric, b.sigma)),
    row('UCL', fmtValue(metric, b.ucl)),
    row('LCL', fmtValue(metric, b.lcl)),
    row('k', fmtNum(b.k ?? 3)),
    row('Points', b.points === undefined ? '—' : String(b.points)),
    row('Mode', String(b.mode ?? '—')),
    row('Transform', String(b.transform ?? 'none')));
}

function nearest<T extends { ts: number }>(xs: T[], ts: number): T | null {
  let best: T | null = null;
  for (const x of xs) if (!best || Math.abs(x.ts - ts) < Math.abs(best.ts - ts)) best = x;
  return best;
}

/** What the host's model server said when the episode began ("queue depth when the shift began"). */
function serverAt(s: ServerAt | null): HTMLElement | null {
  if (!s || !s.metrics.length) return null;
  const rows = s.metrics.map((m) =>
    h('tr', null, h('th', { scope: 'row' }, `${serverMetricName(m.metric)}`, h('span', { class: 'muted' }, ` ${serverLabel(m.target, m.model)}`)), h('td', { class: 'num' }, serverValueText(m.metric, m.value))));
  return h('div', null,
    h('h3', null, 'Model server when it began'),
    h('table', { class: 'kv', testid: 'violation-server', title: `read at ${utcText(s.ts)}` },
      h('tr', null, h('th', { scope: 'row' }, 'Read at'), h('td', { class: 'num' }, new Date(s.ts).toLocaleTimeString())),
      ...rows));
}

function telemetryAt(t: Telemetry | null, ts: number): HTMLElement {
  if (!t || (!t.host?.length && !t.gpus?.length)) return emptyState('No telemetry from this host at that time.', 'Agents send CPU, memory and GPU readings while they run.', 'violation-telemetry-empty');
  const hp = nearest(t.host ?? [], ts);
  const row = (k: string, val: string) => h('tr', null, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, val));
  const rows: HTMLElement[] = [];
  if (hp) {
    rows.push(row('Reading at', new Date(hp.ts).toLocaleTimeString()));
    rows.push(row('CPU', hp.cpu_pct === null ? '—' : `${fmtNum(hp.cpu_pct)}%`));
    rows.push(row('Memory', `${fmtBytes(hp.mem_used_bytes)} of ${fmtBytes(hp.mem_total_bytes)}`));
    if (hp.load1 !== undefined && hp.load1 !== null) rows.push(row('Load (1 min)', fmtNum(hp.load1)));
  }
  for (const g of t.gpus ?? []) {
    const gp = nearest(g.points, ts);
    if (!gp) continue;
    const label = `GPU ${g.gpu_index}`;
    rows.push(row(`${label} util`, gp.util_pct === null ? '—' : `${fmtNum(gp.util_pct)}%`));
    rows.push(row(`${label} memory`, `${fmtBytes(gp.mem_used_bytes)} of ${fmtBytes(gp.mem_total_bytes)}`));
    rows.push(row(`${label} temp · power`, `${gp.temp_c === null ? '—' : `${fmtNum(gp.temp_c)} °C`} · ${gp.power_w === null ? '—' : `${fmtNum(gp.power_w)} W`}`));
    const xids = (g.xid_errors ?? []).filter((x) => Math.abs(x.ts - ts) <= 300_000);
    if (xids.length) rows.push(row(`${label} XID errors`, xids.map((x) => x.xid).join(', ')));
  }
  const tbl = h('table', { class: 'kv', testid: 'violation-telemetry', title: `nearest reading to ${utcText(ts)}` }, ...rows);
  return tbl;
}
