import { get, type AbTest, type PointsResp, type SeriesInfo } from '../api';
import { controlChart, lineChart, PALETTE, ruleLegend, type ChartHandle } from '../charts';
import { debounce, emptyState, h, mount } from '../dom';
import { axisFrom, firstTs, fmtValue, metricLabel, METRICS, resolveRange, WINDOWS } from '../format';
import { href, link, updateParams } from '../router';
import type { PageCtx } from '../page';
import { loading, pageHead, showError, statusBadge } from '../ui';
import { parseKey } from './series';

function label(key: string): string {
  const p = parseKey(key);
  return p ? `${p.site} · ${p.host} · ${p.provider}/${p.model}` : key;
}

export async function comparePage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const keys = ctx.params.getAll('key');
  const range = resolveRange(ctx.params, '6h');
  const picked = new Set(keys);

  const search = h('input', { type: 'search', placeholder: 'Filter series…', testid: 'compare-filter', 'aria-label': 'Filter series' });
  const metricSel = h('select', { testid: 'compare-metric', 'aria-label': 'Metric' },
    h('option', { value: '' }, 'All metrics'), ...METRICS.map(([k, l]) => h('option', { value: k, selected: k === (ctx.params.get('metric') ?? 'latency_ms') }, l)));
  const list = h('div', { class: 'pick-list', testid: 'compare-options' }, loading());
  const count = h('span', { class: 'muted small', testid: 'compare-count' });
  const apply = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'compare-apply' }, 'Compare');
  const pickErr = h('span', { class: 'inline-error', role: 'alert', testid: 'compare-error' });
  const picker = h('form', { class: 'card picker' },
    h('div', { class: 'picker-head' }, h('h2', { class: 'card-title' }, 'Series'), search, metricSel),
    list,
    h('div', { class: 'actions' }, count, pickErr, h('button', { class: 'btn btn-ghost', type: 'button', testid: 'compare-clear', on: { click: () => { picked.clear(); draw(); } } }, 'Clear'), apply));
  const windows = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' },
    ...WINDOWS.map(([k, l]) => h('button', { type: 'button', class: range.window === k ? 'active' : '', 'aria-pressed': String(range.window === k), testid: `window-${k}`, on: { click: () => updateParams({ window: k }) } }, l)));
  const results = h('div');
  view.append(pageHead('Compare', 'Two or more series — models, hosts or sites — on one time range: overlaid, then side by side.', windows), h('div', { class: 'compare-layout' }, picker, results));

  let all: SeriesInfo[] = [];
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const metric = metricSel.value;
    const rows = all.filter((s) => (picked.has(s.key) || !metric || s.metric === metric) && (!q || `${s.site} ${s.host} ${s.provider}/${s.model} ${s.metric}`.toLowerCase().includes(q)));
    count.textContent = `${picked.size} selected`;
    if (!all.length) {
      mount(list, emptyState('No series yet.', ['Install an agent first: see ', link(href('/setup'), null, 'Setup'), '.']));
      return;
    }
    mount(list, ...rows.map((s) => {
      const cb = h('input', { type: 'checkbox', checked: picked.has(s.key), testid: 'compare-option', dataset: { key: s.key } });
      cb.addEventListener('change', () => {
        if (cb.checked) picked.add(s.key);
        else picked.delete(s.key);
        count.textContent = `${picked.size} selected`;
      });
      return h('label', { class: 'pick' }, cb, h('span', { class: 'pick-text' }, h('span', null, label(s.key)), h('span', { class: 'muted small' }, metricLabel(s.metric))), statusBadge(s.status));
    }));
    if (!rows.length) mount(list, h('p', { class: 'muted' }, 'Nothing matches.'));
  };
  search.addEventListener('input', debounce(draw, 100));
  metricSel.addEventListener('change', draw);
  picker.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (picked.size < 2) {
      pickErr.textContent = 'Pick at least two series.';
      return;
    }
    updateParams({ key: Array.from(picked) });
  });

  get<SeriesInfo[]>('series', { site: ctx.site }, ctx.signal)
    .then((s) => {
      all = s;
      draw();
    })
    .catch((e) => {
      if ((e as Error).name !== 'AbortError') showError(list, e);
    });

  if (keys.length < 2) {
    mount(results, h('div', { class: 'card' }, emptyState('Pick two or more series to compare.', 'Tick them in the list, then press Compare. Mix hosts, models or sites; the same metric reads best.', 'compare-empty')));
    return;
  }

  mount(results, h('div', { class: 'card' }, loading()));
  const charts: ChartHandle[] = [];
  ctx.onCleanup(() => charts.forEach((c) => c.destroy()));
  try {
    const resp = await get<{ series: PointsResp[] }>('compare', { key: keys, from: range.from, to: range.to, max_points: 2000 }, ctx.signal);
    const series = resp.series;
    const metrics = new Set(series.map((s) => parseKey(s.key)?.metric ?? ''));
    const metric = series.length ? (parseKey(series[0]!.key)?.metric ?? 'latency_ms') : 'latency_ms';
    // one time axis for all: from the earliest point when every series is younger than the window
    const firsts = series.map(firstTs).filter((t): t is number => t !== null);
    const axis = { from: range.window === 'custom' || !firsts.length ? range.from : axisFrom(range.from, range.to, Math.min(...firsts)), to: range.to };
    const overlayEl = h('div', { class: 'chart', testid: 'compare-overlay' });
    const grid = h('div', { class: 'multiples', testid: 'compare-multiples' });
    const abSlot = h('div', { testid: 'ab-slot' });
    mount(results,
      keys.length === 2 ? h('section', { class: 'card', testid: 'ab-card' }, h('h2', { class: 'card-title' }, 'A/B verdict (A = first, B = second)'), abSlot) : null,
      h('section', { class: 'card' }, h('h2', { class: 'card-title' }, 'Overlaid'),
        metrics.size > 1 ? h('p', { class: 'small warn-text' }, 'These series measure different metrics on one axis.') : null,
        overlayEl,
        series.some((s) => s.downsampled) ? h('p', { class: 'small muted' }, 'Downsampled series are drawn by their bucket means.') : null),
      h('section', { class: 'card' }, h('h2', { class: 'card-title' }, 'Side by side'), grid));
    const syncKey = `cmp-${Math.random().toString(36).slice(2)}`;
    const lines = series.map((s) => {
      const ps = s.downsampled ? (s.buckets ?? []).map((b) => ({ ts: b.ts, value: b.mean })) : (s.points ?? []);
      return { label: label(s.key), xs: ps.map((p) => p.ts), ys: ps.map((p) => p.value) };
    });
    charts.push(lineChart(overlayEl, lines, { from: axis.from, to: axis.to, height: 300, syncKey, yFmt: (v) => fmtValue(metric, v) }));
    series.forEach((s, i) => {
      const el = h('div', { class: 'chart', testid: 'compare-multiple', dataset: { key: s.key } });
      const p = parseKey(s.key);
      grid.append(h('div', { class: 'multiple' },
        h('div', { class: 'multiple-title' }, h('span', { class: 'swatch swatch-dot', style: { background: PALETTE[i % PALETTE.length]! } }),
          link(href('/series', { key: s.key, window: range.window }), null, label(s.key)), h('span', { class: 'muted small' }, ` ${metricLabel(p?.metric ?? '')}`)),
        el, ruleLegend(s)));
      charts.push(controlChart(el, s, { from: axis.from, to: axis.to, metric: p?.metric ?? metric, label: metricLabel(p?.metric ?? metric), height: 200, syncKey, compact: true, color: PALETTE[i % PALETTE.length] }));
    });
    if (keys.length === 2) {
      mount(abSlot, loading('Testing…'));
      get<AbTest>('abtest', { a: keys[0]!, b: keys[1]!, from: range.from, to: range.to }, ctx.signal)
        .then((t) => mount(abSlot, abView(t, metric)))
        .catch((e) => {
          if ((e as Error).name !== 'AbortError') showError(abSlot, e);
        });
    }
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showError(results, e);
  }
}

/** The A/B answer: the verdict in words, then every statistic behind it. */
function abView(t: AbTest, metric: string): HTMLElement {
  const p = (x: number) => (x < 0.001 ? '< 0.001' : x.toFixed(3));
  const v = (x: number) => fmtValue(metric, x);
  const row = (k: string, val: string) => h('tr', null, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, val));
  return h('div', null,
    h('p', { class: 'verdict', testid: 'ab-verdict' }, t.verdict),
    t.warning ? h('p', { class: 'small warn-text', testid: 'ab-warning' }, t.warning) : null,
    h('table', { class: 'kv', testid: 'ab-table' },
      row('Points (A · B)', `${t.n_a} · ${t.n_b}`),
      row('Effective points (lag-1 autocorrelation)', `${Math.round(t.effective_n.a)} · ${Math.round(t.effective_n.b)}`),
      row('Ratio of geometric means B/A (95 % CI)', `${t.ratio.estimate.toFixed(3)} (${t.ratio.ci[0].toFixed(3)}–${t.ratio.ci[1].toFixed(3)})`),
      row('Hodges–Lehmann shift B − A (95 % CI)', `${v(t.hodges_lehmann.shift)} (${v(t.hodges_lehmann.ci[0])} to ${v(t.hodges_lehmann.ci[1])})`),
      row('Welch t on ln values', `t = ${t.welch.t.toFixed(2)}, df = ${t.welch.df.toFixed(1)}, p ${p(t.welch.p_value)}`),
      row('Mann–Whitney U', `U = ${t.mann_whitney.u.toFixed(0)}, p ${p(t.mann_whitney.p_value)}`)));
}
