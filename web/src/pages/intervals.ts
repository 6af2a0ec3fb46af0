// OTLP metrics: the per-interval series built from OpenTelemetry GenAI histograms
// (gen_ai.client.operation.duration, …time_to_first_token, …token.usage). One point per export
// interval — its count, exact mean and bucket quantiles — on an X̄ chart of the interval means
// with limits from their moving range; Nelson rules mark the points.
import { get } from '../api';
import { lineChart, type ChartHandle } from '../charts';
import { emptyState, h, mount } from '../dom';
import { axisFrom, fmtNum, resolveRange, timeEl, WINDOWS } from '../format';
import { href, link, updateParams } from '../router';
import type { PageCtx } from '../page';
import { rule } from '../rules';
import { loading, pageHead, showError } from '../ui';

export interface IntervalSeries {
  key: string;
  site: string;
  host: string;
  provider: string;
  model: string;
  operation: string;
  instrument: string;
  token_type: string;
  unit: string;
  intervals: number;
  last: number;
}

interface IntervalPoint {
  start: number;
  end: number;
  count: number;
  mean: number;
  min: number | null;
  max: number | null;
  p50: number | null;
  p90: number | null;
  p95: number | null;
  p99: number | null;
  errors: number;
  rules: number[];
}

interface IntervalsResp extends Omit<IntervalSeries, 'intervals' | 'last'> {
  kind: string | null;
  temporality: string | null;
  points: IntervalPoint[];
  chart: { kind: string; center?: number; ucl?: number; lcl?: number; sigma?: number; phase1?: number; none?: string };
}

const INSTRUMENT_LABEL: Record<string, string> = {
  'gen_ai.client.operation.duration': 'Client operation duration',
  'gen_ai.client.operation.time_to_first_chunk': 'Client time to first chunk',
  'gen_ai.server.time_to_first_token': 'Server time to first token',
  'gen_ai.server.time_per_output_token': 'Server time per output token',
  'gen_ai.server.request.duration': 'Server request duration',
  'gen_ai.client.token.usage': 'Token usage',
};

function title(s: Pick<IntervalSeries, 'instrument' | 'token_type'>): string {
  const base = INSTRUMENT_LABEL[s.instrument] ?? s.instrument;
  return s.token_type ? `${base} (${s.token_type})` : base;
}

function fmt(unit: string, v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return unit === 'ms' ? `${fmtNum(v)} ms` : `${fmtNum(v)} ${unit}`;
}

export async function intervalsPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const key = ctx.params.get('key');
  const range = resolveRange(ctx.params, '24h');
  const windows = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' },
    ...WINDOWS.map(([k, l]) => h('button', { type: 'button', class: range.window === k ? 'active' : '', 'aria-pressed': String(range.window === k), testid: `window-${k}`, on: { click: () => updateParams({ window: k }) } }, l)));
  const list = h('div', { class: 'card', testid: 'interval-series' }, loading());
  const detail = h('div');
  view.append(
    pageHead('OTLP metrics', 'GenAI histograms exported over OTLP, one point per export interval: count, exact mean and quantiles estimated from the buckets, on an X̄ chart of the interval means. Per-call values and paging come from spans.', windows),
    h('div', { class: 'compare-layout' }, list, detail),
  );

  get<IntervalSeries[]>('otlp/series', { site: ctx.site }, ctx.signal)
    .then((rows) => {
      if (!rows.length) {
        mount(list, emptyState('No OTLP metrics yet.', ['Point an instrumented application\u2019s OTLP exporter here: see ', link(href('/setup'), null, 'Setup'), '.'], 'intervals-empty'));
        return;
      }
      mount(list, h('h2', { class: 'card-title' }, 'Interval series'),
        h('div', { class: 'pick-list' }, ...rows.map((s) => h('a', {
          class: `pick${s.key === key ? ' active' : ''}`, href: href('/intervals', { key: s.key, window: range.window }), testid: 'interval-series-link', dataset: { key: s.key },
        }, h('span', { class: 'pick-text' },
          h('span', null, `${s.site} · ${s.host} · ${s.provider}/${s.model}`),
          h('span', { class: 'muted small' }, `${title(s)} · ${s.operation} · ${s.intervals} intervals`))))));
    })
    .catch((e) => {
      if ((e as Error).name !== 'AbortError') showError(list, e);
    });

  if (!key) {
    mount(detail, h('div', { class: 'card' }, emptyState('Pick an interval series.', 'Each is one instrument of one model on one host, per operation.', 'intervals-pick')));
    return;
  }
  mount(detail, h('div', { class: 'card' }, loading()));
  const charts: ChartHandle[] = [];
  ctx.onCleanup(() => charts.forEach((c) => c.destroy()));
  try {
    const r = await get<IntervalsResp>('otlp/intervals', { key, from: range.from, to: range.to }, ctx.signal);
    const pts = r.points;
    const c = r.chart;
    const chartEl = h('div', { class: 'chart', testid: 'interval-chart' });
    const flagged = pts.filter((p) => p.rules.length);
    const facts = h('dl', { class: 'facts', testid: 'interval-facts' },
      h('dt', null, 'Series'), h('dd', null, `${r.site} · ${r.host} · ${r.provider}/${r.model} · ${r.operation}`),
      h('dt', null, 'Instrument'), h('dd', null, `${r.instrument}${r.token_type ? ` (${r.token_type})` : ''}`),
      h('dt', null, 'Buckets'), h('dd', null, `${r.kind ?? '—'}, exported ${r.temporality ?? '—'}`),
      h('dt', null, 'Limits'), h('dd', { testid: 'interval-limits' }, c.none ? c.none : `centre ${fmt(r.unit, c.center)}, UCL ${fmt(r.unit, c.ucl)}, LCL ${fmt(r.unit, c.lcl)} (σ ${fmt(r.unit, c.sigma)} from the moving range of the first ${c.phase1} interval means)`));
    const rows = pts.slice(-50).reverse().map((p) => h('tr', { testid: 'interval-row' },
      h('td', null, timeEl(p.end)),
      h('td', { class: 'num' }, String(p.count)),
      h('td', { class: 'num' }, fmt(r.unit, p.mean)),
      h('td', { class: 'num' }, fmt(r.unit, p.p50)),
      h('td', { class: 'num' }, fmt(r.unit, p.p95)),
      h('td', { class: 'num' }, fmt(r.unit, p.p99)),
      h('td', { class: 'num' }, p.errors ? String(p.errors) : '—'),
      h('td', { class: 'rules-cell' }, ...p.rules.map((n) => h('span', { class: 'rule-tag', title: `${n} · ${rule(n).name}: ${rule(n).text}` }, h('span', { class: 'swatch swatch-dot', style: { background: rule(n).color } }), String(n))))));
    mount(detail,
      h('section', { class: 'card' }, h('h2', { class: 'card-title' }, title(r)), facts, chartEl,
        h('p', { class: 'small muted' }, `${pts.length} intervals; ${flagged.length} marked by the Nelson rules. Quantiles are estimated from the buckets.`)),
      h('section', { class: 'card' }, h('h2', { class: 'card-title' }, 'Intervals (newest first)'),
        pts.length
          ? h('div', { class: 'table-scroll' }, h('table', { class: 'table', testid: 'interval-table' },
            h('thead', null, h('tr', null, ...['End', 'Calls', 'Mean', 'p50', 'p95', 'p99', 'Failed', 'Rules'].map((t) => h('th', null, t)))),
            h('tbody', null, ...rows)))
          : h('p', { class: 'muted' }, 'No intervals in this range.')));
    const xs = pts.map((p) => p.end);
    const flat = (v: number | undefined) => pts.map(() => (v === undefined ? null : v));
    const lines = [
      { label: 'mean', xs, ys: pts.map((p) => p.mean) },
      { label: 'p95', xs, ys: pts.map((p) => p.p95) },
      { label: 'marked', xs, ys: pts.map((p) => (p.rules.length ? p.mean : null)) },
      { label: 'centre', xs, ys: flat(c.center) },
      { label: 'UCL', xs, ys: flat(c.ucl) },
      { label: 'LCL', xs, ys: flat(c.lcl === undefined ? undefined : Math.max(c.lcl, 0)) },
    ];
    const from = range.window === 'custom' ? range.from : axisFrom(range.from, range.to, pts.length ? pts[0]!.start : null);
    charts.push(lineChart(chartEl, lines, {
      from, to: range.to, height: 280, yFmt: (v) => fmt(r.unit, v),
      colors: ['#2563eb', '#ea580c', '#dc2626', '#64748b', '#dc2626', '#dc2626'],
      pointsFor: [0, 2], dashedFor: [3, 4, 5],
    }));
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showError(detail, e);
  }
}
