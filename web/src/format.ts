import { h } from './dom';

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

export function utcText(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function localText(ms: number): string {
  return dateTime.format(new Date(ms));
}

/** A <time> in the browser's zone, with the UTC time as its tooltip. */
export function timeEl(ms: number | null | undefined, testid?: string): HTMLElement {
  if (ms === null || ms === undefined) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: new Date(ms).toISOString(), title: utcText(ms), testid }, localText(ms));
}

export function ago(ms: number, now = Date.now()): string {
  const s = Math.round((now - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export const METRICS: Array<[string, string]> = [
  ['latency_ms', 'Latency'],
  ['ttft_ms', 'Time to first token'],
  ['tpot_ms', 'Time per output token'],
  ['tokens_per_s', 'Tokens per second'],
];

export function metricLabel(m: string): string {
  return METRICS.find(([k]) => k === m)?.[1] ?? m;
}

export function metricUnit(m: string): string {
  return m === 'tokens_per_s' ? 'tok/s' : 'ms';
}

export function fmtNum(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString();
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1).replace(/\.0$/, '');
  if (a === 0) return '0';
  return v.toPrecision(digits);
}

export function fmtValue(metric: string, v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  if (metric.endsWith('_ms')) {
    if (Math.abs(v) >= 10000) return `${(v / 1000).toFixed(1)} s`;
    return `${fmtNum(v)} ms`;
  }
  return `${fmtNum(v)} ${metricUnit(metric)}`;
}

export function fmtBytes(b: number | null | undefined): string {
  if (b === null || b === undefined || !Number.isFinite(b)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = b;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

/** `2026-11-29T10:00` for <input type=datetime-local> in the browser's zone. */
export function toLocalInput(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Parses <input type=datetime-local> (browser zone) into Unix ms, or null. */
export function fromLocalInput(s: string): number | null {
  if (!s) return null;
  const ms = new Date(s).getTime();
  return Number.isFinite(ms) ? ms : null;
}

export const WINDOWS: Array<[string, string, number]> = [
  ['1h', '1 h', 3600_000],
  ['6h', '6 h', 6 * 3600_000],
  ['24h', '24 h', 24 * 3600_000],
  ['7d', '7 d', 7 * 86400_000],
  ['30d', '30 d', 30 * 86400_000],
];

/** Resolves `window=` (or custom from/to) URL params into a [from, to] range in ms. */
export function resolveRange(params: URLSearchParams, fallback = '6h'): { from: number; to: number; window: string } {
  const w = params.get('window') ?? fallback;
  if (w === 'custom') {
    const from = Number(params.get('from'));
    const to = Number(params.get('to'));
    if (Number.isFinite(from) && Number.isFinite(to) && from > 0 && to > from) return { from, to, window: 'custom' };
  }
  const found = WINDOWS.find(([k]) => k === w) ?? WINDOWS.find(([k]) => k === fallback)!;
  const to = Date.now();
  return { from: to - found[2], to, window: found[0] };
}

/**
 * Where a chart's time axis starts: the window's start — or, when the data begins later (a
 * series younger than the window), just before its first point, so that a new series is not
 * a sliver at the right edge. At least one minute stays visible.
 */
export function axisFrom(from: number, to: number, firstTs: number | null): number {
  if (firstTs === null || !Number.isFinite(firstTs) || firstTs <= from) return from;
  const margin = Math.max((to - firstTs) * 0.03, 1000);
  return Math.round(Math.max(from, Math.min(firstTs - margin, to - 60_000)));
}

/** The earliest timestamp of a points response (raw points, buckets or flagged points). */
export function firstTs(resp: { points?: Array<{ ts: number }>; buckets?: Array<{ ts: number }>; flagged: Array<{ ts: number }> }): number | null {
  const ts = [resp.points?.[0]?.ts, resp.buckets?.[0]?.ts, ...resp.flagged.map((f) => f.ts)].filter((t): t is number => typeof t === 'number');
  return ts.length ? Math.min(...ts) : null;
}

export function shortKey(s: { site: string; host: string; provider: string; model: string; metric: string }): string {
  return `${s.site} / ${s.host} / ${s.provider}/${s.model} · ${metricLabel(s.metric)}`;
}
