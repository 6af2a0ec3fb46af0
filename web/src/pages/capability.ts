// Capability: how well one series meets an SLO limit — Cp, Cpk, Pp, Ppk with their 95 %
// intervals and the percentile Ppk, computed on ln(values) (latency is right-skewed), with a
// histogram of the values, the fitted curve and the limit.
import { get, url, type CapabilityResp, type CapIndex, type SeriesInfo } from '../api';
import { lineChart } from '../charts';
import { emptyState, h, mount } from '../dom';
import { fmtNum, fmtValue, metricLabel, resolveRange, WINDOWS } from '../format';
import { updateParams } from '../router';
import type { PageCtx } from '../page';
import { loading, pageHead, showError } from '../ui';
import { parseKey } from './series';

function label(key: string): string {
  const p = parseKey(key);
  return p ? `${p.site} · ${p.host} · ${p.provider}/${p.model} · ${metricLabel(p.metric)}` : key;
}

export async function capabilityPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const range = resolveRange(ctx.params, '7d');
  const key = ctx.params.get('key') ?? '';
  const usl = ctx.params.get('usl') ?? '';
  const lsl = ctx.params.get('lsl') ?? '';
  const keySel = h('select', { testid: 'cap-key', 'aria-label': 'Series', required: true }, h('option', { value: '' }, 'Choose a series…'));
  const uslIn = h('input', { type: 'number', min: '0', step: 'any', value: usl, placeholder: 'e.g. 800', testid: 'cap-usl', 'aria-label': 'Upper limit (SLO)', required: true });
  const lslIn = h('input', { type: 'number', min: '0', step: 'any', value: lsl, placeholder: 'optional', testid: 'cap-lsl', 'aria-label': 'Lower limit' });
  const form = h('form', { class: 'card picker', testid: 'cap-form' },
    h('div', { class: 'form-row' },
      h('label', null, 'Series ', keySel),
      h('label', null, 'Upper limit (SLO, ms) ', uslIn),
      h('label', null, 'Lower limit ', lslIn),
      h('button', { class: 'btn btn-primary', type: 'submit', testid: 'cap-apply' }, 'Show')));
  const windows = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' },
    ...WINDOWS.map(([k, l]) => h('button', { type: 'button', class: range.window === k ? 'active' : '', 'aria-pressed': String(range.window === k), testid: `window-${k}`, on: { click: () => updateParams({ window: k }) } }, l)));
  const results = h('div');
  view.append(pageHead('Capability', 'How well a series meets its SLO limit: Cpk and Ppk with 95 % intervals, computed on the log scale.', windows), form, results);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    updateParams({ key: keySel.value, usl: uslIn.value, lsl: lslIn.value || null });
  });
  get<SeriesInfo[]>('series', { site: ctx.site }, ctx.signal)
    .then((all) => {
      for (const s of all.filter((x) => x.metric !== 'tokens_per_s')) keySel.append(h('option', { value: s.key, selected: s.key === key }, label(s.key)));
    })
    .catch((e) => {
      if ((e as Error).name !== 'AbortError') showError(results, e);
    });
  if (!key || !usl) {
    mount(results, h('div', { class: 'card' }, emptyState('Choose a series and its SLO limit.', 'For example TTFT with an upper limit of 800 ms: Cpk ≥ 1.33 means the limit sits four sigmas above the mean.', 'cap-empty')));
    return;
  }
  mount(results, h('div', { class: 'card' }, loading()));
  try {
    const params: Record<string, string | number> = { key, usl, from: range.from, to: range.to };
    if (lsl) params.lsl = lsl;
    const c = await get<CapabilityResp>('capability', params, ctx.signal);
    const trendSlot = h('section', { class: 'card', testid: 'trend-card' });
    mount(results, h('section', { class: 'card', testid: 'cap-result' },
      h('h2', { class: 'card-title' }, label(c.key)),
      h('div', { class: 'two-col' }, indices(c), histogram(c))), trendSlot);
    await trendCard(trendSlot, ctx, key, Number(usl));
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showError(results, e);
  }
}

function indices(c: CapabilityResp): HTMLElement {
  const idx = (x: CapIndex | null) => (x ? `${x.estimate.toFixed(2)} (${x.ci[0].toFixed(2)}–${x.ci[1].toFixed(2)})` : '— (needs a lower limit)');
  const row = (k: string, v: string, testid?: string) => h('tr', testid ? { testid } : null, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, v));
  return h('div', null,
    h('table', { class: 'kv', testid: 'cap-table' },
      row('Points', String(c.n)),
      row('Geometric mean', fmtValue(c.metric, c.mean)),
      row('Above the limit', `${fmtNum(c.above_usl * 100)}%`),
      row('Cpk (95 % CI)', idx(c.cpk), 'cap-cpk'),
      row('Ppk (95 % CI)', idx(c.ppk), 'cap-ppk'),
      row('Cp (95 % CI)', idx(c.cp)),
      row('Pp (95 % CI)', idx(c.pp)),
      row('Ppk, percentile method', c.ppk_percentile === null ? '—' : c.ppk_percentile.toFixed(2))),
    h('p', { class: 'small muted' }, 'On ln(values) against ln(limits). Cpk uses the within-process sigma (moving ranges), Ppk the overall one; 1.33 is the usual bar. The percentile Ppk assumes no distribution.'));
}

/** Bars of the counts per bin, the fitted normal (on the log scale) as ticks, the limit as a line. */
function histogram(c: CapabilityResp): HTMLElement {
  const { edges, counts, fitted } = c.histogram;
  const max = Math.max(1, ...counts, ...fitted);
  const lo = Math.log(edges[0]!);
  const hi = Math.log(edges[edges.length - 1]!);
  const at = (v: number) => `${((Math.log(v) - lo) / (hi - lo)) * 100}%`;
  const bars = counts.map((n, i) =>
    h('div', { class: 'hist-bin', title: `${fmtValue(c.metric, edges[i]!)}–${fmtValue(c.metric, edges[i + 1]!)}: ${n}` },
      h('div', { class: 'hist-bar', style: { height: `${(n / max) * 100}%` } }),
      h('div', { class: 'hist-fit', style: { bottom: `${(fitted[i]! / max) * 100}%` } })));
  return h('div', { class: 'hist', testid: 'cap-histogram' },
    h('div', { class: 'hist-bins' }, ...bars,
      h('div', { class: 'hist-limit', style: { left: at(c.usl) }, title: `upper limit ${fmtValue(c.metric, c.usl)}` }),
      c.lsl ? h('div', { class: 'hist-limit', style: { left: at(c.lsl) } }) : null),
    h('div', { class: 'hist-axis small muted' }, h('span', null, fmtValue(c.metric, edges[0]!)), h('span', null, `limit ${fmtValue(c.metric, c.usl)}`), h('span', null, fmtValue(c.metric, edges[edges.length - 1]!))));
}

interface TrendResp {
  daily: Array<{ day: number; p95: number; p50: number; n: number }>;
  forecast: Array<{ day: number; p95: number; interval: [number, number] }>;
  theil_sen: { slope_per_day: number; slope_ci: [number, number] } | null;
  incidents: Array<{ at: number; title: string }>;
  rebaselines: Array<{ at: number; reason: string }>;
  summary: string;
  metric: string;
}

const DAY = 86_400_000;

/** Daily p95 over 30, 90 or 365 days from the daily rollups, with the Theil–Sen slope, the
 * Holt forecast and its 95 % interval, the SLO line, and incidents and re-baselines marked. */
async function trendCard(slot: HTMLElement, ctx: PageCtx, key: string, slo: number): Promise<void> {
  const days = Number(ctx.params.get('tdays') ?? '90');
  const seg = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Trend window' },
    ...[30, 90, 365].map((d) => h('button', { type: 'button', class: d === days ? 'active' : '', 'aria-pressed': String(d === days), testid: `trend-${d}`, on: { click: () => updateParams({ tdays: String(d) }) } }, `${d} d`)));
  const params = { key, days, slo, horizon: 60 };
  const head = h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'Daily p95 and its trend'), seg,
    h('a', { class: 'btn', href: url('trend', { ...params, format: 'csv' }), download: '', testid: 'trend-csv' }, 'CSV'));
  mount(slot, head, loading());
  const t = await get<TrendResp>('trend', params, ctx.signal);
  if (!t.daily.length) {
    mount(slot, head, emptyState('No daily rollups yet.', 'Daily p95 appears once samples have been rolled up (kept 400 days).', 'trend-empty'));
    return;
  }
  const chart = h('div', { class: 'trend-chart', testid: 'trend-chart' });
  const xs = [...t.daily.map((d) => d.day), ...t.forecast.map((f) => f.day)];
  const nD = t.daily.length;
  const pad = (a: Array<number | null>, before: number) => [...Array(before).fill(null), ...a];
  const marks = new Map<number, number>();
  for (const m of [...t.incidents, ...t.rebaselines]) {
    const d = Math.floor(m.at / DAY) * DAY;
    const row = t.daily.find((x) => x.day === d);
    if (row) marks.set(d, row.p95);
  }
  const series = [
    { label: 'daily p95', xs, ys: [...t.daily.map((d) => d.p95), ...Array(t.forecast.length).fill(null)] },
    { label: 'forecast', xs, ys: pad(t.forecast.map((f) => f.p95), nD) },
    { label: '95 % low', xs, ys: pad(t.forecast.map((f) => f.interval[0]), nD) },
    { label: '95 % high', xs, ys: pad(t.forecast.map((f) => f.interval[1]), nD) },
    { label: 'SLO', xs, ys: xs.map(() => slo) },
    { label: 'incident / re-baseline', xs, ys: xs.map((x, i) => (i < nD ? marks.get(x) ?? null : null)) },
  ];
  const slope = t.theil_sen ? `Theil–Sen slope ${fmtNum(t.theil_sen.slope_per_day)} a day (95 % CI ${fmtNum(t.theil_sen.slope_ci[0])} to ${fmtNum(t.theil_sen.slope_ci[1])}).` : '';
  mount(slot, head, chart,
    h('p', { testid: 'trend-summary' }, `${t.summary}. ${slope}`),
    h('p', { class: 'small muted' }, `${t.incidents.length} incident(s) and ${t.rebaselines.length} re-baseline(s) in the range, marked as dots.`));
  // the whole window asked for (a new series has few days), through the forecast
  const today = Math.floor(Date.now() / DAY) * DAY;
  lineChart(chart, series, {
    from: Math.min(xs[0]!, today - (days - 1) * DAY), to: Math.max(xs[xs.length - 1]!, today + DAY), height: 240, yFmt: (v) => fmtValue(t.metric, v),
    colors: ['#2563eb', '#2563eb', '#94a3b8', '#94a3b8', '#dc2626', '#ea580c'], dashedFor: [1, 2, 3, 4], pointsFor: nD <= 10 ? [0, 5] : [5],
  });
}
