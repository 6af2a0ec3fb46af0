import uPlot from 'uplot';
import type { Baseline, PointsResp, Telemetry } from './api';
import { h, mount } from './dom';
import { fmtBytes, fmtNum, fmtValue, localText, utcText } from './format';
import { primaryRule, rule } from './rules';

// Charts are uPlot canvases. The control chart draws its ±1σ/±2σ/±3σ zones, centre line and
// limits in hooks below the data, and every flagged point on top, coloured by rule.

const AXIS_SIZE = 64; // same y-axis width on every chart, so stacked plots line up in time

export function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export const PALETTE = ['#2563eb', '#ea580c', '#16a34a', '#9333ea', '#0891b2', '#db2777', '#ca8a04', '#64748b'];

export interface ChartHandle {
  u: uPlot;
  destroy(): void;
}

function dpr(): number {
  return window.devicePixelRatio || 1;
}

function autoSize(el: HTMLElement, u: uPlot, height: number): () => void {
  let w = el.clientWidth;
  const ro = new ResizeObserver(() => {
    const nw = el.clientWidth;
    if (nw > 0 && nw !== w) {
      w = nw;
      u.setSize({ width: nw, height });
    }
  });
  ro.observe(el);
  return () => ro.disconnect();
}

const hm = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const hms = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
const md = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

/** Time ticks in the browser's locale and zone: times, with the date under the first tick of each day. */
function timeTicks(_u: uPlot, splits: number[], _ax: number, _space: number, incr: number): string[] {
  return splits.map((s, i) => {
    const d = new Date(s * 1000);
    if (incr >= 86400) return md.format(d);
    const t = (incr < 60 ? hms : hm).format(d);
    const prev = i > 0 ? new Date(splits[i - 1]! * 1000) : null;
    return !prev || prev.toDateString() !== d.toDateString() ? `${t}\n${md.format(d)}` : t;
  });
}

function axes(yFmt: (v: number) => string, showX = true): uPlot.Axis[] {
  const stroke = cssVar('--chart-text');
  const grid = { stroke: cssVar('--chart-grid'), width: 1 };
  const ticks = { stroke: cssVar('--chart-grid'), width: 1, size: 4 };
  return [
    { stroke, grid, ticks, show: showX, size: showX ? 44 : 0, values: timeTicks },
    { stroke, grid, ticks, size: AXIS_SIZE, values: (_u, vals) => vals.map((v) => (v === null ? '' : yFmt(v))) },
  ];
}

function tsLegend(_u: uPlot, v: number | null): string {
  return v === null ? '—' : localText(v * 1000);
}

/** Baseline zone boundary `centre + m·σ` in original units (log baselines live on ln scale). */
export function zoneFn(b: Baseline): (m: number) => number {
  const k = b.k ?? 3;
  if (b.transform === 'log' && b.sigma > 0) {
    const logScale = Math.abs(Math.exp(b.center + k * b.sigma) - b.ucl) <= Math.abs(b.ucl) * 0.01 + 1e-9;
    if (logScale) return (m) => Math.exp(b.center + m * b.sigma);
  }
  return (m) => b.center + m * b.sigma;
}

export function centerLine(b: Baseline): number {
  return zoneFn(b)(0);
}

export interface ControlOpts {
  from: number;
  to: number;
  metric: string;
  height?: number;
  syncKey?: string;
  compact?: boolean;
  /** Line colour (default: the theme's). */
  color?: string;
  /** Legend label of the values. */
  label?: string;
  /** Timestamps (ms) of points to ring (a violation's qualifying window). */
  highlight?: Set<number>;
  onZoom?: (fromMs: number, toMs: number) => void;
  onFlagClick?: (violationId: string | number) => void;
}

export function controlChart(el: HTMLElement, resp: PointsResp, o: ControlOpts): ChartHandle {
  const height = o.height ?? 340;
  const b = resp.baseline;
  const zone = b ? zoneFn(b) : null;
  const accent = o.color ?? cssVar('--chart-line');
  const fmt = (v: number) => fmtValue(o.metric, v).replace(/ (ms|tok\/s)$/, '');

  let data: uPlot.AlignedData;
  let series: uPlot.Series[];
  let bands: uPlot.Band[] | undefined;
  const values: number[] = [];
  if (resp.downsampled && resp.buckets) {
    const bs = resp.buckets;
    data = [bs.map((x) => x.ts / 1000), bs.map((x) => x.min), bs.map((x) => x.max), bs.map((x) => x.mean)];
    for (const x of bs) values.push(x.min, x.max);
    const bandStroke = cssVar('--chart-band-stroke');
    series = [
      { value: tsLegend },
      { label: 'min', stroke: bandStroke, width: 1, points: { show: false }, value: (_u, v) => fmtValue(o.metric, v) },
      { label: 'max', stroke: bandStroke, width: 1, points: { show: false }, value: (_u, v) => fmtValue(o.metric, v) },
      { label: 'mean', stroke: accent, width: 1.5, points: { show: false }, value: (_u, v) => fmtValue(o.metric, v) },
    ];
    bands = [{ series: [2, 1], fill: cssVar('--chart-band') }];
  } else {
    const ps = resp.points ?? [];
    data = [ps.map((p) => p.ts / 1000), ps.map((p) => p.value)];
    for (const p of ps) values.push(p.value);
    series = [
      { value: tsLegend },
      {
        label: o.label ?? 'value',
        stroke: accent,
        width: 1.25,
        points: { show: ps.length <= 400, size: 4, fill: accent, stroke: accent },
        value: (_u, v) => fmtValue(o.metric, v),
      },
    ];
  }
  for (const f of resp.flagged) values.push(f.value);
  if (b) values.push(b.ucl, b.lcl);

  const flagged = resp.flagged.slice().sort((a, b2) => a.ts - b2.ts);

  const drawZones = (u: uPlot) => {
    if (!b || !zone) return;
    const ctx = u.ctx;
    const { left, top, width, height: hh } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, hh);
    ctx.clip();
    const y = (v: number) => u.valToPos(v, 'y', true);
    const fills: Array<[number, number, string]> = [
      [2, 3, cssVar('--zone-a')],
      [1, 2, cssVar('--zone-b')],
      [-1, 1, cssVar('--zone-c')],
      [-2, -1, cssVar('--zone-b')],
      [-3, -2, cssVar('--zone-a')],
    ];
    const k = b.k ?? 3;
    for (const [lo, hi, color] of fills) {
      const vLo = lo === -3 ? b.lcl : lo === -k ? b.lcl : zone(lo);
      const vHi = hi === 3 ? b.ucl : zone(hi);
      const y1 = y(vHi);
      const y2 = y(vLo);
      ctx.fillStyle = color;
      ctx.fillRect(left, Math.min(y1, y2), width, Math.abs(y2 - y1));
    }
    ctx.restore();
  };

  // Paging detectors' episodes (a CUSUM alarm, the model down…) as shaded spans with a title.
  const drawAlarms = (u: uPlot) => {
    const alarms = resp.alarms ?? [];
    if (!alarms.length) return;
    const ctx = u.ctx;
    const r = dpr();
    const { left, top, width, height: hh } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, hh);
    ctx.clip();
    for (const a of alarms) {
      const x1 = Math.max(u.valToPos(a.from / 1000, 'x', true), left);
      const end = a.to ?? o.to;
      const x2 = Math.min(u.valToPos(end / 1000, 'x', true), left + width);
      if (x2 < left || x1 > left + width) continue;
      ctx.fillStyle = cssVar('--alarm');
      ctx.fillRect(x1, top, Math.max(x2 - x1, 2 * r), hh);
      ctx.fillStyle = cssVar('--bad');
      ctx.fillRect(x1, top, Math.max(x2 - x1, 2 * r), 3 * r);
      if (!o.compact) {
        ctx.font = `${11 * r}px system-ui, sans-serif`;
        ctx.textBaseline = 'top';
        ctx.fillText(`${a.title}${a.to ? '' : ' (open)'}`, x1 + 4 * r, top + 6 * r);
      }
    }
    ctx.restore();
  };

  const drawLines = (u: uPlot) => {
    if (!b || !zone) return;
    const ctx = u.ctx;
    const { left, top, width, height: hh } = u.bbox;
    const r = dpr();
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, hh);
    ctx.clip();
    const lines: Array<[number, string, number[], string, number]> = [
      // value, colour, dash, label, which way its label moves when it would overlap another
      [zone(0), cssVar('--center'), [], 'CL', 0],
      [b.ucl, cssVar('--limit'), [6, 4], 'UCL', -1],
      [b.lcl, cssVar('--limit'), [6, 4], 'LCL', 1],
    ];
    const ys = lines.map(([v]) => Math.round(u.valToPos(v, 'y', true)) + 0.5);
    const shown = (yy: number) => yy >= top - 1 && yy <= top + hh + 1;
    lines.forEach(([, color, dash], i) => {
      const yy = ys[i]!;
      if (!shown(yy)) return;
      ctx.strokeStyle = color;
      ctx.lineWidth = r * 1.25;
      ctx.setLineDash(dash.map((d) => d * r));
      ctx.beginPath();
      ctx.moveTo(left, yy);
      ctx.lineTo(left + width, yy);
      ctx.stroke();
    });
    const labelH = 16 * r;
    const placed: number[] = [];
    for (const [i, [v, color, , label, away]] of lines.entries()) {
      const yy = ys[i]!;
      if (o.compact || !shown(yy)) continue;
      // labels of limits squeezed close to the centre line move aside, or are left out (the
      // values are in the baseline table)
      const free = (y: number) => placed.every((p) => Math.abs(p - y) >= labelH);
      const ly = [yy, yy + away * labelH].find((y, i) => (i === 0 || away !== 0) && free(y));
      if (ly === undefined) continue;
      placed.push(ly);
      ctx.setLineDash([]);
      ctx.font = `${11 * r}px system-ui, sans-serif`;
      const text = `${label} ${fmtValue(o.metric, v)}`;
      const tw = ctx.measureText(text).width;
      const pad = 3 * r;
      ctx.fillStyle = cssVar('--chart-label-bg');
      ctx.fillRect(left + width - tw - pad * 3, ly - 8 * r, tw + pad * 2, labelH);
      ctx.fillStyle = color;
      ctx.textBaseline = 'middle';
      ctx.fillText(text, left + width - tw - pad * 2, ly);
    }
    ctx.restore();
  };

  const drawFlags = (u: uPlot) => {
    const ctx = u.ctx;
    const r = dpr();
    const { left, top, width, height: hh } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left - 6 * r, top - 6 * r, width + 12 * r, hh + 12 * r);
    ctx.clip();
    if (o.highlight && resp.points) {
      ctx.strokeStyle = cssVar('--highlight');
      ctx.lineWidth = 2 * r;
      for (const p of resp.points) {
        if (!o.highlight.has(p.ts)) continue;
        const x = u.valToPos(p.ts / 1000, 'x', true);
        const yy = u.valToPos(p.value, 'y', true);
        ctx.beginPath();
        ctx.arc(x, yy, 7 * r, 0, Math.PI * 2);
        ctx.stroke();
      }
    }
    const ring = cssVar('--marker-ring');
    for (const f of flagged) {
      const x = u.valToPos(f.ts / 1000, 'x', true);
      const yy = u.valToPos(f.value, 'y', true);
      if (x < left - 1 || x > left + width + 1) continue;
      const rules = f.rules.slice().sort((a, c) => a - c);
      const main = rule(primaryRule(rules)).color;
      const rad = (o.compact ? 3.5 : 5) * r;
      ctx.beginPath();
      ctx.arc(x, yy, rad, 0, Math.PI * 2);
      ctx.fillStyle = main;
      ctx.fill();
      ctx.lineWidth = 1.5 * r;
      ctx.strokeStyle = rules.length > 1 ? rule(rules[1]!).color : ring;
      ctx.stroke();
    }
    ctx.restore();
  };

  // Hover tooltip for flagged points: which rule, when, what value.
  const tip = h('div', { class: 'chart-tip', role: 'tooltip', testid: 'chart-tip' });
  tip.hidden = true;
  let hoverFlag: (typeof flagged)[number] | null = null;
  const onCursor = (u: uPlot) => {
    const { left: cl, top: ct } = u.cursor;
    hoverFlag = null;
    if (cl === undefined || ct === undefined || cl < 0) {
      tip.hidden = true;
      return;
    }
    let best = 10;
    for (const f of flagged) {
      const x = u.valToPos(f.ts / 1000, 'x');
      const yy = u.valToPos(f.value, 'y');
      const d = Math.hypot(x - cl, yy - ct);
      if (d < best) {
        best = d;
        hoverFlag = f;
      }
    }
    if (!hoverFlag) {
      tip.hidden = true;
      return;
    }
    const f = hoverFlag;
    mount(tip,
      h('div', { class: 'chart-tip-time', title: utcText(f.ts) }, localText(f.ts)),
      h('div', null, h('strong', null, fmtValue(o.metric, f.value))),
      ...f.rules.map((n) => h('div', { class: 'rule-line' }, h('span', { class: 'swatch', style: { background: rule(n).color } }), `Rule ${n}: ${rule(n).name}`)),
      f.violation_id !== undefined && f.violation_id !== null && o.onFlagClick ? h('div', { class: 'muted' }, 'Click for the violation') : null,
    );
    tip.hidden = false;
    const x = u.valToPos(f.ts / 1000, 'x') + u.bbox.left / dpr();
    const yy = u.valToPos(f.value, 'y') + u.bbox.top / dpr();
    tip.style.left = `${Math.min(x + 12, u.over.clientWidth - 180 + u.bbox.left / dpr())}px`;
    tip.style.top = `${Math.max(yy - 10, 0)}px`;
  };

  let lo = Math.min(...values.filter(Number.isFinite));
  let hi = Math.max(...values.filter(Number.isFinite));
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  const pad = (hi - lo || Math.abs(hi) || 1) * 0.08;

  const opts: uPlot.Options = {
    width: Math.max(el.clientWidth, 300),
    height,
    series,
    bands,
    legend: { show: !o.compact, live: true },
    cursor: {
      sync: o.syncKey ? { key: o.syncKey, setSeries: false } : undefined,
      drag: { x: !o.compact, y: false, setScale: !o.compact },
      points: { show: false },
    },
    scales: {
      x: { time: true, auto: false, min: o.from / 1000, max: o.to / 1000 },
      y: { range: () => [lo - pad, hi + pad] },
    },
    axes: axes(fmt, true),
    hooks: {
      drawClear: [drawZones, drawAlarms],
      drawAxes: [drawLines],
      draw: [drawFlags],
      setCursor: [onCursor],
      setScale: [
        (u, key) => {
          if (key === 'x' && u.scales.x!.min != null && u.scales.x!.max != null) o.onZoom?.(u.scales.x!.min * 1000, u.scales.x!.max * 1000);
        },
      ],
    },
  };
  const u = new uPlot(opts, data, el);
  u.over.appendChild(tip);
  u.over.addEventListener('click', () => {
    if (hoverFlag && hoverFlag.violation_id !== undefined && hoverFlag.violation_id !== null) o.onFlagClick?.(hoverFlag.violation_id);
  });
  u.over.addEventListener('dblclick', () => u.setScale('x', { min: o.from / 1000, max: o.to / 1000 }));
  el.dataset.flaggedCount = String(resp.flagged.length);
  el.dataset.points = String(resp.downsampled ? (resp.buckets?.length ?? 0) : (resp.points?.length ?? 0));
  el.dataset.downsampled = String(resp.downsampled);
  const stop = autoSize(el, u, height);
  return {
    u,
    destroy() {
      stop();
      u.destroy();
    },
  };
}

/** The rule legend under a control chart: one chip per rule that fired, with its count. */
export function ruleLegend(resp: PointsResp): HTMLElement {
  const counts = new Map<number, number>();
  for (const f of resp.flagged) for (const r of f.rules) counts.set(r, (counts.get(r) ?? 0) + 1);
  const items = Array.from(counts.entries()).sort((a, b) => a[0] - b[0]);
  const wrap = h('div', { class: 'rule-legend', testid: 'rule-legend', dataset: { flaggedCount: resp.flagged.length } });
  const alarms = resp.alarms ?? [];
  for (const a of alarms) {
    wrap.append(h('span', { class: 'rule-chip alarm-chip', testid: 'legend-alarm', dataset: { detector: a.detector, incident: a.incident_id ?? '' } },
      h('span', { class: 'swatch', style: { background: cssVar('--bad') } }), `${a.title}${a.to ? '' : ' — open'} (${a.severity})`));
  }
  if (!items.length && !alarms.length) {
    wrap.append(h('span', { class: 'muted' }, 'No rule fired in this range.'));
  }
  for (const [n, c] of items) {
    const info = rule(n);
    wrap.append(
      h('span', { class: 'rule-chip', testid: `legend-rule-${n}`, title: info.text, dataset: { count: c } },
        h('span', { class: 'swatch swatch-dot', style: { background: info.color } }),
        `Rule ${n} · ${info.name}`, h('span', { class: 'rule-count' }, String(c))),
    );
  }
  wrap.append(
    h('span', { class: 'legend-key' },
      h('span', { class: 'swatch swatch-line', style: { background: cssVar('--center') } }), 'centre',
      h('span', { class: 'swatch swatch-dash', style: { borderColor: cssVar('--limit') } }), 'UCL / LCL (±3σ)',
      h('span', { class: 'swatch', style: { background: cssVar('--zone-b-solid') } }), '1–2σ',
      h('span', { class: 'swatch', style: { background: cssVar('--zone-a-solid') } }), '2–3σ',
      h('span', { class: 'swatch', style: { background: cssVar('--bad') } }), 'shaded: a page (paging detector) open'),
  );
  return wrap;
}

export interface LineSeries {
  label: string;
  xs: number[]; // ms
  ys: Array<number | null>;
}

/** A plain multi-line chart (telemetry, compare overlay). */
export function lineChart(
  el: HTMLElement,
  lines: LineSeries[],
  o: { from: number; to: number; height?: number; syncKey?: string; yFmt: (v: number) => string; yMin?: number; yMax?: number; showX?: boolean; colors?: string[]; legend?: boolean; pointsFor?: number[]; dashedFor?: number[] },
): ChartHandle {
  const height = o.height ?? 120;
  const tables: uPlot.AlignedData[] = lines.map((l) => [l.xs.map((x) => x / 1000), l.ys] as uPlot.AlignedData);
  const data = tables.length ? uPlot.join(tables) : ([[]] as unknown as uPlot.AlignedData);
  const colors = o.colors ?? PALETTE;
  const opts: uPlot.Options = {
    width: Math.max(el.clientWidth, 300),
    height,
    series: [
      { value: tsLegend },
      ...lines.map((l, i) => ({
        label: l.label,
        stroke: colors[i % colors.length],
        width: 1.25,
        spanGaps: false,
        dash: o.dashedFor?.includes(i) ? [6, 4] : undefined,
        points: o.pointsFor?.includes(i) ? { show: true, size: 8, fill: colors[i % colors.length] } : { show: false },
        value: (_u: uPlot, v: number | null) => (v === null ? '—' : o.yFmt(v)),
      })),
    ],
    legend: { show: o.legend ?? true, live: true },
    cursor: { sync: o.syncKey ? { key: o.syncKey, setSeries: false } : undefined, drag: { x: false, y: false }, points: { size: 5 } },
    scales: {
      x: { time: true, auto: false, min: o.from / 1000, max: o.to / 1000 },
      y: {
        range: (_u, min, max) => {
          const lo = o.yMin ?? min;
          const hi = Math.max(o.yMax ?? max, max);
          const pad = o.yMin !== undefined ? 0 : (hi - lo || 1) * 0.1;
          return [lo - pad, hi + (o.yMax !== undefined ? 0 : pad)];
        },
      },
    },
    axes: axes(o.yFmt, o.showX ?? true),
  };
  const u = new uPlot(opts, data, el);
  const stop = autoSize(el, u, height);
  return {
    u,
    destroy() {
      stop();
      u.destroy();
    },
  };
}

export interface TelemetryPanel {
  title: string;
  testid: string;
  lines: LineSeries[];
  yFmt: (v: number) => string;
  yMin?: number;
  yMax?: number;
  empty?: string;
}

const GIB = 1024 ** 3;

/** The six host panels: CPU, memory, GPU util, GPU memory, temperature, power. */
export function telemetryPanels(t: Telemetry): TelemetryPanel[] {
  const hx = t.host.map((p) => p.ts);
  const gpuLines = (f: (p: Telemetry['gpus'][number]['points'][number]) => number | null) =>
    t.gpus.map((g) => ({ label: `GPU ${g.gpu_index}${g.name ? ` ${g.name}` : ''}`, xs: g.points.map((p) => p.ts), ys: g.points.map(f) }));
  const noGpu = t.gpus.length ? undefined : 'No GPU reported by this host.';
  const pct = (v: number) => `${fmtNum(v)}%`;
  return [
    { title: 'CPU', testid: 'telemetry-cpu', lines: [{ label: 'CPU %', xs: hx, ys: t.host.map((p) => p.cpu_pct) }], yFmt: pct, yMin: 0, yMax: 100, empty: t.host.length ? undefined : 'No host telemetry.' },
    {
      title: 'Memory',
      testid: 'telemetry-mem',
      lines: [{ label: 'used', xs: hx, ys: t.host.map((p) => (p.mem_used_bytes === null ? null : p.mem_used_bytes / GIB)) }],
      yFmt: (v) => fmtBytes(v * GIB),
      yMin: 0,
      yMax: Math.max(0, ...t.host.map((p) => (p.mem_total_bytes ?? 0) / GIB)),
      empty: t.host.length ? undefined : 'No host telemetry.',
    },
    { title: 'GPU utilisation', testid: 'telemetry-gpu-util', lines: gpuLines((p) => p.util_pct), yFmt: pct, yMin: 0, yMax: 100, empty: noGpu },
    {
      title: 'GPU memory',
      testid: 'telemetry-gpu-mem',
      lines: gpuLines((p) => (p.mem_used_bytes === null ? null : p.mem_used_bytes / GIB)),
      yFmt: (v) => fmtBytes(v * GIB),
      yMin: 0,
      yMax: Math.max(0, ...t.gpus.flatMap((g) => g.points.map((p) => (p.mem_total_bytes ?? 0) / GIB))),
      empty: noGpu,
    },
    { title: 'GPU temperature', testid: 'telemetry-gpu-temp', lines: gpuLines((p) => p.temp_c), yFmt: (v) => `${fmtNum(v)} °C`, empty: noGpu },
    { title: 'GPU power', testid: 'telemetry-gpu-power', lines: gpuLines((p) => p.power_w), yFmt: (v) => `${fmtNum(v)} W`, yMin: 0, empty: noGpu },
    ...serverPanels(t),
  ];
}

/** How each model-server gauge is titled and shown, in panel order. */
const SERVER_METRICS: Array<{ metric: string; title: string; fmt: (v: number) => string; yMax?: number }> = [
  { metric: 'requests_waiting', title: 'Model server: queue (waiting)', fmt: (v) => fmtNum(v) },
  { metric: 'requests_running', title: 'Model server: running', fmt: (v) => fmtNum(v) },
  { metric: 'kv_cache_usage_pct', title: 'Model server: KV cache', fmt: (v) => `${fmtNum(v)}%`, yMax: 100 },
  { metric: 'ttft_mean_ms', title: 'Model server: TTFT (mean)', fmt: (v) => `${fmtNum(v)} ms` },
  { metric: 'e2e_mean_ms', title: 'Model server: end-to-end (mean)', fmt: (v) => `${fmtNum(v)} ms` },
  { metric: 'preemptions', title: 'Model server: preemptions', fmt: (v) => fmtNum(v) },
  { metric: 'models_loaded', title: 'Model server: models loaded', fmt: (v) => fmtNum(v) },
  { metric: 'model_vram_bytes', title: 'Model server: model VRAM', fmt: (v) => fmtBytes(v) },
];

/** A label for one model-server series: the target, and the model when it names one. */
export function serverLabel(target: string, model: string): string {
  return model ? `${target} · ${model}` : target;
}

/** One panel per model-server gauge the host reported (none when it reported none). */
export function serverPanels(t: Telemetry): TelemetryPanel[] {
  const series = t.server ?? [];
  return SERVER_METRICS.flatMap(({ metric, title, fmt, yMax }) => {
    const of = series.filter((s) => s.metric === metric);
    if (!of.length) return [];
    return [{
      title,
      testid: `telemetry-server-${metric.replace(/_/g, '-')}`,
      lines: of.map((s) => ({ label: serverLabel(s.target, s.model), xs: s.points.map((p) => p.ts), ys: s.points.map((p) => p.value) })),
      yFmt: fmt,
      yMin: 0,
      yMax,
    }];
  });
}

/** A model-server gauge's value in words ("17", "93%", "300 ms"). */
export function serverValueText(metric: string, v: number): string {
  const m = SERVER_METRICS.find((x) => x.metric === metric);
  return m ? m.fmt(v) : fmtNum(v);
}

/** A model-server gauge's name in words. */
export function serverMetricName(metric: string): string {
  const m = SERVER_METRICS.find((x) => x.metric === metric);
  return m ? m.title.replace('Model server: ', '') : metric.replace(/_/g, ' ');
}
