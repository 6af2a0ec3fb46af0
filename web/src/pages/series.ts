import { get, type Detection, type DetectionHost, type Page, type PointsResp, type SeriesInfo, type Telemetry, type Violation, url, violationStatus } from '../api';
import { centerLine, controlChart, lineChart, ruleLegend, telemetryPanels, type ChartHandle } from '../charts';
import { sparkline } from '../spark';
import { debounce, emptyState, h, mount, notice } from '../dom';
import { subscribe, throttle } from '../events';
import { axisFrom, firstTs, fmtNum, fmtValue, fromLocalInput, metricLabel, METRICS, resolveRange, timeEl, toLocalInput, WINDOWS } from '../format';
import { href, link, navigate, replaceParams, updateParams } from '../router';
import type { PageCtx } from '../page';
import { findingChip, loading, pageHead, severityBadge, showError, statusBadge } from '../ui';

export interface KeyParts {
  site: string;
  host: string;
  provider: string;
  model: string;
  metric: string;
  /** probe (the key's form without a suffix), proxy, client or otlp. */
  source: string;
}

const SOURCES = ['proxy', 'client', 'otlp'];

/**
 * `series|site|host|provider|model|metric[|source]` → parts. The collector's `SeriesId`
 * (crate `llmscope-model`) defines this text; no part may contain `|`, so a key has exactly
 * six parts for probes and seven for other sources (`…|ttft_ms|proxy`).
 */
export function parseKey(key: string): KeyParts | null {
  const p = key.split('|');
  if (p[0] !== 'series' || p.some((x) => x === '')) return null;
  if (p.length === 7 && !SOURCES.includes(p[6]!)) return null;
  if (p.length !== 6 && p.length !== 7) return null;
  return { site: p[1]!, host: p[2]!, provider: p[3]!, model: p[4]!, metric: p[5]!, source: p[6] ?? 'probe' };
}

export function makeKey(k: KeyParts): string {
  const parts = ['series', k.site, k.host, k.provider, k.model, k.metric];
  if (k.source && k.source !== 'probe') parts.push(k.source);
  return parts.join('|');
}

export async function seriesPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const key = ctx.params.get('key');
  if (key) return chartView(view, ctx, key);
  const model = ctx.params.get('model');
  if (model) return resolveView(view, ctx, model, ctx.params.get('provider'));
  return listView(view, ctx);
}

/** From the overview (site × model) to one series: the one most in trouble, latency first. */
async function resolveView(view: HTMLElement, ctx: PageCtx, model: string, provider: string | null): Promise<void> {
  view.append(loading('Finding the series…'));
  try {
    const all = (await get<SeriesInfo[]>('series', { site: ctx.site, model }, ctx.signal)).filter(
      (s) => s.model === model && (!provider || s.provider === provider),
    );
    if (!all.length) {
      mount(view, pageHead('Series', null), emptyState(`No series for ${model} yet.`, ['Points appear once an agent probes this model. See ', link(href('/setup'), null, 'Setup'), '.']));
      return;
    }
    const metricRank = (m: string) => Math.max(0, METRICS.findIndex(([k]) => k === m));
    all.sort((a, b) => b.open_violations - a.open_violations || metricRank(a.metric) - metricRank(b.metric) || a.host.localeCompare(b.host));
    const q = new URLSearchParams(location.search);
    q.delete('model');
    q.delete('provider');
    q.set('key', all[0]!.key);
    navigate(`/series?${q.toString()}`, true);
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showError(view, e);
  }
}

async function listView(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const filter = h('input', { type: 'search', placeholder: 'Filter by host, model or metric…', testid: 'series-filter', 'aria-label': 'Filter series', value: ctx.params.get('q') ?? '' });
  const body = h('div', { class: 'card' }, loading());
  view.append(pageHead('Series', 'One control chart per site, host, model and metric. Pick one.', filter), body);
  let all: SeriesInfo[];
  try {
    all = await get<SeriesInfo[]>('series', { site: ctx.site }, ctx.signal);
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showError(body, e);
    return;
  }
  const draw = () => {
    const q = filter.value.trim().toLowerCase();
    const rows = all.filter((s) => !q || `${s.site} ${s.host} ${s.provider}/${s.model} ${s.metric}`.toLowerCase().includes(q));
    if (!all.length) {
      mount(body, emptyState('No series yet — install an agent.', ['See ', link(href('/setup'), null, 'Setup'), ' to connect the first inference host.']));
      return;
    }
    if (!rows.length) {
      mount(body, emptyState('Nothing matches this filter.', 'Clear the filter box to see every series.'));
      return;
    }
    mount(body, h('div', { class: 'table-scroll' }, h('table', { class: 'table', testid: 'series-table' },
      h('thead', null, h('tr', null, ...['Status', 'Site', 'Host', 'Model', 'Metric', 'Last value', 'Last point', 'Recent'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, ...rows.map((s) =>
        h('tr', { testid: 'series-row', dataset: { key: s.key } },
          h('td', null, statusBadge(s.status), s.open_violations ? h('span', { class: 'small muted' }, ` ${s.open_violations} open`) : null),
          h('td', null, s.site),
          h('td', null, s.host),
          h('td', null, link(href('/series', { key: s.key, site: ctx.site }), { testid: 'series-link' }, `${s.provider}/${s.model}`)),
          h('td', null, metricLabel(s.metric)),
          h('td', { class: 'num' }, fmtValue(s.metric, s.last_value)),
          h('td', null, timeEl(s.last_ts)),
          h('td', null, sparkline(s.spark ?? [], s.status, 100, 22)),
        ))))));
  };
  filter.addEventListener('input', debounce(() => {
    replaceParams({ q: filter.value.trim() || null });
    draw();
  }, 120));
  draw();
}

function windowBar(range: { from: number; to: number; window: string }): HTMLElement {
  const from = h('input', { type: 'datetime-local', testid: 'custom-from', 'aria-label': 'From', value: toLocalInput(range.from) });
  const to = h('input', { type: 'datetime-local', testid: 'custom-to', 'aria-label': 'To', value: toLocalInput(range.to) });
  const err = h('span', { class: 'inline-error', testid: 'custom-error', role: 'alert' });
  const custom = h('form', { class: `custom-range${range.window === 'custom' ? '' : ' collapsed'}`, testid: 'custom-range' },
    from, h('span', { class: 'muted' }, '→'), to, h('button', { class: 'btn btn-small', type: 'submit', testid: 'custom-apply' }, 'Apply'), err);
  custom.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = fromLocalInput(from.value);
    const t = fromLocalInput(to.value);
    if (f === null || t === null) return void (err.textContent = 'Enter both a start and an end time.');
    if (t <= f) return void (err.textContent = 'The end must be after the start.');
    updateParams({ window: 'custom', from: f, to: t });
  });
  return h('div', { class: 'window-bar' },
    h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' },
      ...WINDOWS.map(([k, label]) =>
        h('button', { type: 'button', class: range.window === k ? 'active' : '', 'aria-pressed': String(range.window === k), testid: `window-${k}`, on: { click: () => updateParams({ window: k, from: null, to: null }) } }, label)),
      h('button', { type: 'button', class: range.window === 'custom' ? 'active' : '', 'aria-pressed': String(range.window === 'custom'), testid: 'window-custom', on: { click: () => { custom.classList.remove('collapsed'); from.focus(); } } }, 'Custom')),
    custom);
}

async function chartView(view: HTMLElement, ctx: PageCtx, key: string): Promise<void> {
  const parts = parseKey(key);
  if (!parts) {
    view.append(pageHead('Series', null), notice('error', `“${key}” is not a series key (series|site|host|provider|model|metric).`, 'error'));
    return;
  }
  const range = resolveRange(ctx.params, '6h');
  const head = h('div');
  const selectors = h('div', { class: 'selectors' });
  const liveEl = h('span', { class: 'live', testid: 'live-status' });
  const samplesCsv = h('a', { class: 'btn btn-small', testid: 'samples-csv', download: '', href: url('samples.csv', { site: parts.site, host: parts.host, model: parts.model, from: range.from, to: range.to }) }, 'Samples CSV');
  const chartEl = h('div', { class: 'chart', testid: 'control-chart' });
  const chartMsg = h('div', { class: 'chart-msg' });
  const legendSlot = h('div');
  const baselineSlot = h('div');
  const telemetrySlot = h('div', { class: 'telemetry' }, loading('Loading host telemetry…'));
  const violationsSlot = h('div');
  const detectionSlot = h('div', { testid: 'series-detection' }, loading());

  view.append(
    head,
    h('div', { class: 'toolbar' }, selectors, windowBar(range), h('div', { class: 'toolbar-end' }, liveEl, samplesCsv)),
    h('section', { class: 'card chart-card' }, chartMsg, chartEl, legendSlot),
    h('section', { class: 'card' }, h('h2', { class: 'card-title' }, 'Host ', h('span', { class: 'mono' }, parts.host), ' — same time axis'), telemetrySlot),
    h('div', { class: 'two-col' }, h('section', { class: 'card' }, h('h2', { class: 'card-title' }, 'Baseline in force'), baselineSlot),
      h('section', { class: 'card' }, h('h2', { class: 'card-title' }, 'Recent violations of this series'), violationsSlot)),
    h('section', { class: 'card' }, h('h2', { class: 'card-title' }, 'What pages here, and how often by chance'), detectionSlot),
  );

  const loadDetection = async () => {
    try {
      const d = await get<Detection>('detection', { site: parts.site }, ctx.signal);
      const m = d.model_hosts.find((x) => x.host === parts.host && x.provider === parts.provider && x.model === parts.model && x.source === parts.source);
      mount(detectionSlot, detectionSummary(d, m, parts.metric));
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(detectionSlot, e);
    }
  };

  // Header and host/metric switchers from the series list of this model at this site.
  let info: SeriesInfo | undefined;
  const loadInfo = async () => {
    try {
      const siblings = await get<SeriesInfo[]>('series', { site: parts.site, model: parts.model }, ctx.signal);
      const mine = siblings.filter((s) => s.provider === parts.provider && s.model === parts.model && (s.source ?? 'probe') === parts.source);
      const sources = Array.from(new Set(siblings.filter((s) => s.provider === parts.provider && s.model === parts.model && s.host === parts.host).map((s) => s.source ?? 'probe')));
      info = mine.find((s) => s.key === key);
      const hosts = Array.from(new Set(mine.map((s) => s.host))).sort();
      const metrics = Array.from(new Set(mine.filter((s) => s.host === parts.host).map((s) => s.metric)));
      if (!hosts.includes(parts.host)) hosts.unshift(parts.host);
      if (!metrics.includes(parts.metric)) metrics.unshift(parts.metric);
      const go = (k: Partial<KeyParts>) => updateParams({ key: makeKey({ ...parts, ...k }) });
      const hostSel = h('select', { testid: 'host-select', 'aria-label': 'Host', on: { change: (e) => go({ host: (e.target as HTMLSelectElement).value }) } },
        ...hosts.map((x) => h('option', { value: x, selected: x === parts.host }, x)));
      const metricSel = h('select', { testid: 'metric-select', 'aria-label': 'Metric', on: { change: (e) => go({ metric: (e.target as HTMLSelectElement).value }) } },
        ...metrics.map((m) => h('option', { value: m, selected: m === parts.metric }, metricLabel(m))));
      if (!sources.includes(parts.source)) sources.unshift(parts.source);
      const sourceSel = h('select', { testid: 'source-select', 'aria-label': 'Source', title: 'Canary probes and real traffic are separate series with their own baselines', on: { change: (e) => go({ source: (e.target as HTMLSelectElement).value }) } },
        ...sources.map((x) => h('option', { value: x, selected: x === parts.source }, x)));
      mount(selectors, h('label', { class: 'inline-field' }, 'Host', hostSel), h('label', { class: 'inline-field' }, 'Metric', metricSel),
        sources.length > 1 ? h('label', { class: 'inline-field' }, 'Source', sourceSel) : null);
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      mount(selectors);
    }
    mount(head, pageHead(parts.model,
      [`${parts.site} · ${parts.host} · ${parts.provider} · ${metricLabel(parts.metric)}${parts.source === 'probe' ? '' : ` · ${parts.source}`} `,
        info ? statusBadge(info.status, 'series-status') : null,
        info && info.open_violations ? [' ', link(href('/violations', { site: parts.site, host: parts.host, model: parts.model, metric: parts.metric, status: 'open' }), { testid: 'series-open-violations' }, `${info.open_violations} open violation${info.open_violations === 1 ? '' : 's'}`)] : null],
      link(href('/compare', { key: [key], window: range.window === 'custom' ? null : range.window }), { class: 'btn btn-small', testid: 'series-compare' }, 'Compare…')));
    head.querySelector('h1')?.setAttribute('data-testid', 'series-title');
  };

  let chart: ChartHandle | null = null;
  let tcharts: ChartHandle[] = [];
  let zoomed = false;
  const syncKey = `sync-${Math.random().toString(36).slice(2)}`;
  ctx.onCleanup(() => {
    chart?.destroy();
    tcharts.forEach((c) => c.destroy());
  });

  const onZoom = (f: number, t: number) => {
    zoomed = Math.abs(f - axis.from) > 1000 || Math.abs(t - axis.to) > 1000;
    for (const c of tcharts) c.u.setScale('x', { min: f / 1000, max: t / 1000 });
    liveState();
  };

  let cur = { from: range.from, to: range.to };
  // the time axis: `cur`, starting later when the series is younger than the window
  let axis = { ...cur };
  let firstLoad = true;

  const loadPoints = async () => {
    if (range.window !== 'custom') {
      const r = resolveRange(ctx.params, '6h');
      cur = { from: r.from, to: r.to };
    }
    try {
      const resp = await get<PointsResp>('series/points', { key, from: cur.from, to: cur.to, max_points: 2000 }, ctx.signal);
      chart?.destroy();
      chart = null;
      const first = range.window === 'custom' ? null : firstTs(resp);
      axis = { from: axisFrom(cur.from, cur.to, first), to: cur.to };
      const n = resp.downsampled ? (resp.buckets?.length ?? 0) : (resp.points?.length ?? 0);
      if (n === 0 && resp.flagged.length === 0) {
        chartEl.dataset.flaggedCount = '0';
        mount(chartMsg, emptyState('No points in this range.', ['Try a longer window — or check the agent on ', h('span', { class: 'mono' }, parts.host), ' is running (see ', link(href('/setup'), null, 'Setup'), ').'], 'chart-empty'));
        chartEl.replaceChildren();
        legendSlot.replaceChildren();
      } else {
        mount(chartMsg,
          !resp.baseline ? notice('info', 'Learning: the baseline is estimated from the first points; limits and rules apply once it is frozen.', 'chart-learning') : null,
          resp.downsampled ? h('p', { class: 'small muted', testid: 'chart-downsampled' }, `Long range: ${n.toLocaleString()} buckets — band = min…max per bucket, line = mean. Every flagged point is still drawn.`) : null,
          first !== null && axis.from > cur.from ? h('p', { class: 'small muted', testid: 'chart-axis-start' }, 'No points in this window before ', timeEl(first), ' — the axis starts there.') : null);
        chartEl.replaceChildren();
        chart = controlChart(chartEl, resp, { from: axis.from, to: axis.to, metric: parts.metric, label: metricLabel(parts.metric), syncKey, onZoom, onFlagClick: (id) => navigate(href('/violations', { id: String(id) })) });
        mount(legendSlot, ruleLegend(resp));
      }
      renderBaseline(resp);
      if (firstLoad) {
        firstLoad = false;
        zoomed = false;
      }
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(chartMsg, e);
    }
  };

  const loadTelemetry = async () => {
    try {
      const t = await get<Telemetry>('telemetry', { site: parts.site, host: parts.host, from: axis.from, to: axis.to, max_points: 2000 }, ctx.signal);
      tcharts.forEach((c) => c.destroy());
      tcharts = [];
      if (!t.host.length && !t.gpus.some((g) => g.points.length)) {
        mount(telemetrySlot, emptyState('No telemetry from this host in this range.', 'The agent sends CPU, memory and GPU readings every few seconds while it runs.', 'telemetry-empty'));
        return;
      }
      telemetrySlot.replaceChildren();
      const panels = telemetryPanels(t);
      const lastDrawn = panels.map((p) => !p.empty).lastIndexOf(true);
      for (const [i, p] of panels.entries()) {
        const box = h('div', { class: 'tpanel', testid: p.testid });
        telemetrySlot.append(h('div', { class: 'tpanel-wrap' }, h('div', { class: 'tpanel-title' }, p.title), box));
        if (p.empty) {
          box.append(h('div', { class: 'tpanel-empty muted small' }, p.empty));
          continue;
        }
        tcharts.push(lineChart(box, p.lines, { from: axis.from, to: axis.to, height: 96, syncKey, yFmt: p.yFmt, yMin: p.yMin, yMax: p.yMax, showX: i === lastDrawn, legend: true }));
      }
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(telemetrySlot, e);
    }
  };

  const renderBaseline = (resp: PointsResp) => {
    const b = resp.baseline ?? info?.baseline ?? null;
    if (!b) {
      mount(baselineSlot, emptyState('No baseline yet.', 'The first successful points of this series are used to estimate it; then it is frozen.', 'baseline-empty'));
      return;
    }
    const row = (k: string, v: string) => h('tr', null, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, v));
    mount(baselineSlot, h('table', { class: 'kv', testid: 'baseline-table' },
      row('Centre', fmtValue(parts.metric, centerLine(b))),
      row('Sigma', b.transform === 'log' ? `${fmtNum(b.sigma)} (log scale)` : fmtValue(parts.metric, b.sigma)),
      row('UCL', fmtValue(parts.metric, b.ucl)),
      row('LCL', fmtValue(parts.metric, b.lcl)),
      row('k', fmtNum(b.k ?? 3)),
      row('Points', b.points === undefined ? '—' : String(b.points)),
      row('Mode', String(b.mode ?? '—')),
      row('Transform', String(b.transform ?? 'none'))),
      h('p', { class: 'small' }, link(href('/settings', { tab: 'baselines', site: parts.site }), { testid: 'rebaseline-link' }, 'Re-baseline from a range…')));
  };

  const loadViolations = async () => {
    try {
      const page = await get<Page<Violation>>('violations', { site: parts.site, host: parts.host, model: parts.model, metric: parts.metric, limit: 8 }, ctx.signal);
      const items = page.items.filter((v) => v.key === key || (v.provider === parts.provider && v.model === parts.model));
      if (!items.length) {
        mount(violationsSlot, emptyState('No violations recorded.', 'When a paging detector or a Nelson rule fires on this series it is listed here.', 'series-violations-empty'));
        return;
      }
      mount(violationsSlot, h('table', { class: 'table compact' },
        h('tbody', null, ...items.map((v) => h('tr', null,
          h('td', null, timeEl(v.opened_at)),
          h('td', null, findingChip(v)),
          h('td', null, severityBadge(v.severity)),
          h('td', null, statusBadge(violationStatus(v))),
          h('td', null, link(href('/violations', { id: String(v.id), site: parts.site }), { testid: 'series-violation-link' }, 'Details')))))));
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(violationsSlot, e);
    }
  };

  const liveState = (connected?: boolean) => {
    if (connected !== undefined) liveConnected = connected;
    if (range.window === 'custom') {
      mount(liveEl, h('span', { class: 'dot dot-off' }), 'Fixed range');
      liveEl.dataset.state = 'fixed';
    } else if (zoomed) {
      mount(liveEl, h('span', { class: 'dot dot-off' }), 'Paused (zoomed — double-click to reset)');
      liveEl.dataset.state = 'paused';
    } else if (liveConnected) {
      mount(liveEl, h('span', { class: 'dot dot-live' }), 'Live');
      liveEl.dataset.state = 'live';
    } else {
      mount(liveEl, h('span', { class: 'dot dot-off' }), 'Connecting…');
      liveEl.dataset.state = 'connecting';
    }
  };
  let liveConnected = false;
  liveState();

  await Promise.all([loadInfo(), loadPoints()]);
  void loadTelemetry();
  void loadViolations();
  void loadDetection();

  if (range.window !== 'custom') {
    const refresh = throttle(() => {
      if (zoomed || ctx.signal.aborted) return;
      void loadPoints().then(() => loadTelemetry());
    }, 5000);
    ctx.onCleanup(refresh.cancel);
    ctx.onCleanup(subscribe({
      state: (live) => liveState(live),
      points: (e) => {
        if (e.keys.includes(key)) refresh.call();
      },
      violation: (e) => {
        if (e.key === key) {
          refresh.call();
          void loadViolations();
          void loadInfo();
        }
      },
    }));
  }
}

/** How often a healthy series like this one would page or raise a marker, at its own rate. */
export function detectionSummary(d: Detection, m: DetectionHost | undefined, metric: string): HTMLElement {
  const per = (x: number | undefined) => (x === undefined ? '—' : x >= 10 ? x.toFixed(0) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2));
  const design = m && m.source !== 'probe' ? d.design.traffic : d.design.probe;
  const pages = m?.paging_metrics ?? [];
  const row = (k: string, v: Node | string) => h('tr', null, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, v));
  const rows = [
    row('Pages on', pages.length ? pages.map(metricLabel).join(', ') + (pages.includes(metric) ? '' : ' (not this metric: its rules mark the chart)') : '—'),
    row('Paging CUSUM', design ? `k ${fmtNum(design.k)}, h ${fmtNum(design.h)} — one false page per ${d.settings.arl0.toLocaleString()} probes of the model-host; a 1σ shift caught in ~${Math.round(design.arl_1sigma)} probes` : '—'),
    row('Probe rate', m?.interval_s ? `one call every ${fmtNum(m.interval_s)} s (${Math.round(m.calls_per_day ?? 0).toLocaleString()} a day)` : 'not known yet'),
    row('Expected false pages a day', h('span', { testid: 'detection-pages' }, per(m?.false_pages_per_day?.total))),
    row('Expected rule markers a day', h('span', { testid: 'detection-markers' }, per(m?.false_markers_per_day))),
  ];
  return h('div', null,
    h('table', { class: 'kv' }, ...rows),
    h('p', { class: 'small muted' }, 'Figures for a healthy model: the paging detectors are designed for their false-alarm rate; the Nelson rules’ markers are simulated for the current rule configuration and a Phase I of ',
      String(d.settings.baseline_points), ' points. See Settings → Detection for the fleet.'));
}
