#!/usr/bin/env node
// Dev-only mock of the collector's REST API (docs/api.md), with synthetic data, serving
// web/dist with a single-page-app fallback. Plain node:http, no dependencies.
// It is a development aid for the dashboard, NOT the test target: the e2e tests run against
// the real collector.
//
//   node dev/mock-api.mjs            # http://127.0.0.1:8090, admin token llms_admin_dev
//   PORT=8091 MOCK_ADMIN_TOKEN=x MOCK_EMPTY=1 node dev/mock-api.mjs   # first run, no data
//
// Synthetic data: sites eu (gpu-1 with 2 GPUs, gpu-2 with 1) and us (node-a, no GPU); a mean
// shift on eu/gpu-1/ollama/llama3 latency 50…20 min before start (open violations), a spike on
// the model named `<img src=x onerror=window.__xss=1>` 10 min before start, older episodes
// days ago, and a series still learning its baseline.

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PORT = Number(process.env.PORT ?? 8090);
const HOST = process.env.HOST ?? '127.0.0.1';
const ADMIN = process.env.MOCK_ADMIN_TOKEN ?? 'llms_admin_dev';
const EMPTY = process.env.MOCK_EMPTY === '1';
const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const XSS = '<img src=x onerror=window.__xss=1>';

const STEP = 15_000; // one point per series every 15 s
const START = Math.floor(Date.now() / STEP) * STEP;
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

// ------------------------------------------------------------------ inventory
const HOSTS = [
  { site: 'eu', host: 'gpu-1', gpus: [{ index: 0, name: 'NVIDIA A100-SXM4-80GB' }, { index: 1, name: 'NVIDIA A100-SXM4-80GB' }], mem: 512 },
  { site: 'eu', host: 'gpu-2', gpus: [{ index: 0, name: 'NVIDIA L40S' }], mem: 256 },
  { site: 'us', host: 'node-a', gpus: [], mem: 64 },
];
const MODELS = [
  { site: 'eu', provider: 'ollama', model: 'llama3' },
  { site: 'eu', provider: 'vllm', model: 'mistral-7b' },
  { site: 'us', provider: 'ollama', model: 'llama3' },
  { site: 'us', provider: 'openai_compatible', model: XSS },
];
const METRICS = ['latency_ms', 'ttft_ms', 'tpot_ms', 'tokens_per_s'];
const BASE = { latency_ms: 820, ttft_ms: 130, tpot_ms: 24, tokens_per_s: 41 };

const series = [];
for (const m of MODELS) {
  for (const hst of HOSTS.filter((x) => x.site === m.site)) {
    for (const metric of METRICS) {
      const key = ['series', m.site, hst.host, m.provider, m.model, metric].join('|');
      const scale = (m.model === 'mistral-7b' ? 0.7 : 1) * (hst.host === 'gpu-2' ? 1.15 : 1);
      const center = BASE[metric] * (metric === 'tokens_per_s' ? 1 / scale : scale);
      const learning = hst.host === 'gpu-2' && m.model === 'mistral-7b' && metric === 'tokens_per_s';
      series.push({
        key, site: m.site, host: hst.host, provider: m.provider, model: m.model, metric,
        center, sigma: center * 0.06, learning, since: learning ? START - 8 * MIN : START - 35 * DAY,
      });
    }
  }
}
const byKey = new Map(series.map((s) => [s.key, s]));
const LAT_EU = 'series|eu|gpu-1|ollama|llama3|latency_ms';
const LAT_XSS = `series|us|node-a|openai_compatible|${XSS}|latency_ms`;

// ------------------------------------------------------------------ deterministic noise
function hash(str, i) {
  let h = 2166136261 ^ i;
  for (let k = 0; k < str.length; k++) h = Math.imul(h ^ str.charCodeAt(k), 16777619);
  h = Math.imul(h ^ (h >>> 15), 2246822507);
  h = Math.imul(h ^ (h >>> 13), 3266489909);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}
function gauss(str, i) {
  const u = Math.max(hash(str, i), 1e-12);
  const v = hash(str, i + 0x9e3779b9);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** The value of a series at step index i (ts = i * STEP). */
function valueAt(s, i) {
  const ts = i * STEP;
  // differenced noise: negatively autocorrelated, so long same-side runs are rare by chance
  let z = (0.75 / Math.SQRT2) * (gauss(s.key, i) - gauss(s.key, i - 1));
  const daily = 0.25 * Math.sin((2 * Math.PI * (ts % DAY)) / DAY);
  z += daily;
  if (s.key === LAT_EU || (s.site === 'eu' && s.host === 'gpu-1' && s.model === 'llama3' && s.metric === 'ttft_ms')) {
    if (ts >= START - 50 * MIN && ts < START - 20 * MIN) z += 2.3;
    if (ts >= START - 5 * DAY && ts < START - 5 * DAY + 90 * MIN) z += 1.6;
  }
  if (s.key === LAT_XSS && (ts === START - 10 * MIN || ts === START - 2 * DAY)) z += 5.5;
  if (s.site === 'eu' && s.host === 'gpu-2' && s.model === 'llama3' && s.metric === 'latency_ms' && ts === START - 26 * HOUR) z += 4.2;
  const sign = s.metric === 'tokens_per_s' ? -1 : 1;
  return Math.max(1, s.center + sign * z * s.sigma);
}

function zOf(s, v) {
  return (v - s.center) / s.sigma;
}

/** Nelson rules 1, 2, 5, 6 over z-scores; returns flags per index (array of rule numbers). */
function evaluate(zs) {
  const out = zs.map(() => []);
  let runSide = 0;
  let runLen = 0;
  for (let i = 0; i < zs.length; i++) {
    const z = zs[i];
    if (Math.abs(z) > 3) out[i].push(1);
    const side = z > 0 ? 1 : z < 0 ? -1 : 0;
    if (side !== 0 && side === runSide) runLen++;
    else {
      runSide = side;
      runLen = side === 0 ? 0 : 1;
    }
    if (runLen >= 9) out[i].push(2);
    for (const [rule, count, win, k] of [[5, 2, 3, 2], [6, 4, 5, 1]]) {
      if (i < win - 1) continue;
      for (const sgn of [1, -1]) {
        if (sgn * z <= k) continue;
        let c = 0;
        for (let j = i - win + 1; j <= i; j++) if (sgn * zs[j] > k) c++;
        if (c >= count) out[i].push(rule);
      }
    }
    out[i] = Array.from(new Set(out[i]));
  }
  return out;
}

/** Raw points of a series over [from, to] with their flags. */
function pointsOf(s, from, to) {
  const i0 = Math.ceil(Math.max(from, s.since) / STEP);
  const i1 = Math.floor(Math.min(to, Date.now()) / STEP);
  if (i1 < i0) return [];
  const lead = 12;
  const vals = [];
  for (let i = i0 - lead; i <= i1; i++) vals.push(valueAt(s, i));
  const flags = s.learning ? vals.map(() => []) : evaluate(vals.map((v) => zOf(s, v)));
  const out = [];
  for (let i = i0; i <= i1; i++) out.push({ ts: i * STEP, value: round(vals[i - i0 + lead]), flags: flags[i - i0 + lead] });
  return out;
}

function round(v) {
  return Math.round(v * 100) / 100;
}

function baselineOf(s) {
  if (s.learning) return null;
  return { center: round(s.center), sigma: round(s.sigma), ucl: round(s.center + 3 * s.sigma), lcl: round(s.center - 3 * s.sigma), k: 3, points: 50, mode: 'frozen', transform: 'none' };
}

// ------------------------------------------------------------------ violations (episodes)
const RULE_NAME = { 1: 'beyond limits', 2: 'run on one side', 5: '2 of 3 beyond 2σ', 6: '4 of 5 beyond 1σ' };
const RULE_TEXT = {
  1: 'a point is more than 3σ from the centre line: something unusual happened to this one call',
  2: '9 points in a row on the same side of the centre line: the average has shifted',
  5: '2 of the last 3 points more than 2σ from the centre on the same side: a shift is likely starting',
  6: '4 of the last 5 points more than 1σ from the centre on the same side: a small sustained shift',
};
const WINDOW = { 1: 1, 2: 9, 5: 3, 6: 5 };
const RESOLVE_AFTER = 10;

const violations = [];
let nextViolation = 1001;
if (!EMPTY) {
  for (const s of series) {
    if (s.learning) continue;
    const pts = pointsOf(s, START - 7 * DAY, START);
    const open = {};
    for (let i = 0; i < pts.length; i++) {
      for (const r of pts[i].flags) {
        const ep = open[r];
        if (ep && (pts[i].ts - ep.last) / STEP <= RESOLVE_AFTER) ep.last = pts[i].ts;
        else {
          if (ep) violations.push(ep);
          open[r] = { key: s.key, rule: r, opened_at: pts[i].ts, last: pts[i].ts };
        }
      }
    }
    for (const ep of Object.values(open)) violations.push(ep);
  }
  violations.sort((a, b) => a.opened_at - b.opened_at);
  for (let i = 0; i < violations.length; i++) {
    const ep = violations[i];
    const s = byKey.get(ep.key);
    const stillOpen = START - ep.last < 30 * MIN;
    violations[i] = {
      id: nextViolation++, key: ep.key, site: s.site, host: s.host, provider: s.provider, model: s.model, metric: s.metric,
      rule: ep.rule, rule_name: RULE_NAME[ep.rule], rule_text: RULE_TEXT[ep.rule],
      opened_at: ep.opened_at, last_point_at: ep.last, resolved_at: stillOpen ? null : ep.last + RESOLVE_AFTER * STEP,
      status: stillOpen ? 'open' : 'resolved', acked_by: null, acked_at: null, ack_note: null,
    };
  }
}

function violationFor(key, rule, ts) {
  return violations.find((v) => v.key === key && v.rule === rule && ts >= v.opened_at && ts <= v.last_point_at);
}

function seriesStatus(s) {
  if (s.learning) return 'learning';
  return violations.some((v) => v.key === s.key && v.status !== 'resolved') ? 'violation' : 'in_control';
}

function seriesJson(s) {
  const pts = pointsOf(s, Date.now() - 60 * STEP, Date.now());
  const last = pts[pts.length - 1];
  return {
    key: s.key, site: s.site, host: s.host, provider: s.provider, model: s.model, metric: s.metric,
    status: seriesStatus(s), open_violations: violations.filter((v) => v.key === s.key && v.status !== 'resolved').length,
    last_value: last?.value ?? null, last_ts: last?.ts ?? null, baseline: baselineOf(s), spark: pts.map((p) => p.value),
  };
}

function pointsResponse(s, from, to, maxPoints) {
  const pts = pointsOf(s, from, to);
  const flagged = [];
  for (const p of pts) {
    if (p.flags.length) {
      const rules = p.flags.slice().sort((a, b) => a - b);
      const v = violationFor(s.key, rules[0], p.ts);
      flagged.push({ ts: p.ts, value: p.value, rules, violation_id: v?.id ?? null });
    }
  }
  const base = { key: s.key, baseline: baselineOf(s), flagged };
  if (pts.length <= maxPoints) return { ...base, downsampled: false, points: pts };
  const per = Math.ceil(pts.length / maxPoints);
  const buckets = [];
  for (let i = 0; i < pts.length; i += per) {
    const chunk = pts.slice(i, i + per);
    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (const p of chunk) {
      min = Math.min(min, p.value);
      max = Math.max(max, p.value);
      sum += p.value;
    }
    buckets.push({ ts: chunk[0].ts, min, max, mean: round(sum / chunk.length), count: chunk.length });
  }
  return { ...base, downsampled: true, buckets };
}

// ------------------------------------------------------------------ telemetry
function telemetry(site, host, from, to, maxPoints) {
  const h = HOSTS.find((x) => x.site === site && x.host === host);
  if (!h || EMPTY) return { host: [], gpus: [] };
  const i0 = Math.ceil(Math.max(from, START - 35 * DAY) / STEP);
  const i1 = Math.floor(Math.min(to, Date.now()) / STEP);
  const stride = Math.max(1, Math.ceil((i1 - i0 + 1) / maxPoints));
  const hostPts = [];
  const gpus = h.gpus.map((g) => ({ gpu_index: g.index, name: g.name, points: [] }));
  for (let i = i0; i <= i1; i += stride) {
    const ts = i * STEP;
    const busy = host === 'gpu-1' && ts >= START - 50 * MIN && ts < START - 20 * MIN ? 1 : 0;
    const wave = Math.sin((2 * Math.PI * (ts % DAY)) / DAY);
    hostPts.push({
      ts, cpu_pct: round(35 + 12 * wave + 6 * gauss(host + 'cpu', i) + 25 * busy),
      mem_used_bytes: Math.round((h.mem * 0.42 + 8 * wave + 20 * busy) * 1024 ** 3), mem_total_bytes: h.mem * 1024 ** 3, load1: round(4 + 2 * wave + 5 * busy),
    });
    for (const g of gpus) {
      const n = gauss(`${host}gpu${g.gpu_index}`, i);
      g.points.push({
        ts, util_pct: round(Math.min(100, Math.max(0, 55 + 15 * wave + 5 * n + 30 * busy))),
        mem_used_bytes: Math.round((38 + 4 * wave + 24 * busy) * 1024 ** 3), mem_total_bytes: 80 * 1024 ** 3,
        temp_c: round(58 + 6 * wave + 1.5 * n + 14 * busy), power_w: round(240 + 60 * wave + 10 * n + 120 * busy),
      });
    }
  }
  return { host: hostPts, gpus };
}

// ------------------------------------------------------------------ config state
const channels = [
  { name: 'ops-webhook', kind: 'webhook', config: { url: 'http://127.0.0.1:9/hook' }, has_secret: true, max_attempts: 8, source: 'config' },
];
const routes = [{ id: 1, position: 1, matchers: { site: 'eu', rule: 1 }, channels: ['ops-webhook'], continue: false, source: 'config' }];
let defaultRoute = ['ops-webhook'];
const silences = [
  { id: 1, matchers: { site: 'us', model: 'llama3' }, starts_at: START - 3 * DAY, ends_at: START - 3 * DAY + 2 * HOUR, comment: 'driver upgrade', created_by: 'sam', created_at: START - 3 * DAY, state: 'expired' },
];
const tokens = EMPTY ? [] : [
  { id: 1, site: 'eu', role: 'ingest', name: 'eu-agents', created_at: START - 40 * DAY, revoked_at: null, secret: 'llms_ingest_eu' },
  { id: 2, site: 'us', role: 'ingest', name: 'us-agents', created_at: START - 40 * DAY, revoked_at: null, secret: 'llms_ingest_us' },
];
const sitesCreated = new Set(EMPTY ? [] : ['eu', 'us']);
const ruleConfigs = [
  { scope_kind: 'model', scope_value: 'llama3', settings: { rules: [1, 2, 3, 5, 6], params: { '2.run': 9 }, resolve_after: 10 }, updated_by: 'sam', updated_at: START - 10 * DAY },
];
const RULE_DEFAULTS = { rules: [1, 2, 3, 4, 5, 6, 7, 8], params: { '1.k': 3, '2.run': 9, '3.run': 6, '4.run': 14, '5.k': 2, '6.k': 1, '7.run': 15, '8.run': 8 }, resolve_after: 10 };
const baselineHistory = [];
let nextId = 100;

function silenceState(s) {
  const now = Date.now();
  return s.ends_at <= now ? 'expired' : s.starts_at > now ? 'pending' : 'active';
}

// ------------------------------------------------------------------ HTTP helpers
class HttpError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

function send(res, status, body, headers = {}) {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(data);
}

function timeParam(q, name, fallback) {
  const raw = q.get(name);
  if (raw === null || raw === '') return fallback;
  if (/^\d+$/.test(raw)) return Number(raw);
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new HttpError(400, `${name}: expected Unix milliseconds or RFC 3339, got "${raw}"`, name);
  return t;
}

function range(q) {
  const to = timeParam(q, 'to', Date.now());
  const from = timeParam(q, 'from', to - HOUR);
  if (from >= to) throw new HttpError(400, 'from must be before to', 'from');
  return { from, to };
}

// the mock signs everyone in as this admin (the dashboard sends the session's CSRF token)
const MOCK_USER = { id: 'mock-admin', email: 'dev@llmscope.local', name: 'Dev Admin', role: 'admin', sites: null, disabled: false, has_password: true, oidc: false };
const MOCK_CSRF = 'mock-csrf';

function requireAdmin(req) {
  if (req.headers['x-csrf-token'] === MOCK_CSRF) return;
  const auth = req.headers.authorization ?? '';
  const m = /^Bearer (.+)$/.exec(auth);
  if (!m) throw new HttpError(401, 'this change needs the admin token: Authorization: Bearer <token>');
  const t = m[1].trim();
  if (t === ADMIN || tokens.some((x) => x.role === 'admin' && !x.revoked_at && x.secret === t)) return;
  throw new HttpError(401, 'the admin token is not valid');
}

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, `body is not JSON: ${e.message}`);
  }
}

function csvCell(v) {
  let s = v === null || v === undefined ? '' : String(v);
  if (/^[=+\-@]/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function siteFilter(q) {
  return q.get('site') || null;
}

function filterViolations(q) {
  const site = siteFilter(q);
  const { from, to } = { from: timeParam(q, 'from', 0), to: timeParam(q, 'to', Date.now() + DAY) };
  const rule = q.get('rule');
  const status = q.get('status');
  if (status && !['open', 'resolved', 'acknowledged'].includes(status)) throw new HttpError(400, `status must be open, resolved or acknowledged, got "${status}"`, 'status');
  return violations
    .filter((v) => (!site || v.site === site) && (!q.get('host') || v.host === q.get('host')) && (!q.get('model') || v.model === q.get('model')) &&
      (!q.get('metric') || v.metric === q.get('metric')) && (!rule || v.rule === Number(rule)) &&
      (!status || v.status === status) && v.opened_at >= from && v.opened_at <= to)
    .sort((a, b) => b.opened_at - a.opened_at);
}

function detail(v) {
  const s = byKey.get(v.key);
  const around = pointsOf(s, v.opened_at - 10 * STEP, v.last_point_at + 10 * STEP).map((p) => ({ ts: p.ts, value: p.value }));
  const win = WINDOW[v.rule];
  const qualifying = pointsOf(s, v.opened_at - (win - 1) * STEP, v.last_point_at).map((p) => ({ ts: p.ts, value: p.value }));
  return { ...v, points: qualifying, baseline: baselineOf(s), context: { points: around, telemetry: telemetry(v.site, v.host, v.opened_at - 2 * MIN, v.opened_at + 2 * MIN, 50) } };
}

// ------------------------------------------------------------------ SSE
const clients = new Set();
function broadcast(event, data) {
  for (const c of clients) c.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}
setInterval(() => {
  if (clients.size && !EMPTY) broadcast('points', { keys: series.map((s) => s.key), ts: Date.now() });
}, 5000).unref();

// ------------------------------------------------------------------ routes
async function api(req, res, url) {
  const q = url.searchParams;
  const p = url.pathname.replace(/^\/api\/v1/, '');
  const method = req.method;
  const visible = EMPTY ? [] : series;
  const site = siteFilter(q);

  if (method === 'GET' && p === '/auth/me') {
    return send(res, 200, { signed_in: true, anonymous: false, actor: MOCK_USER.email, role: 'admin', sites: null, user: MOCK_USER, csrf: MOCK_CSRF, methods: { password: true, oidc: null } });
  }
  if (method === 'POST' && (p === '/auth/login' || p === '/auth/logout')) return send(res, 200, { user: MOCK_USER, csrf: MOCK_CSRF });
  if (method === 'GET' && p === '/setup') return send(res, 200, { first_run: EMPTY && tokens.length === 0 && sitesCreated.size === 0, grpc_addr: '0.0.0.0:7070', version: '0.1.0-mock' });
  if (method === 'GET' && p === '/sites') {
    const names = new Set([...sitesCreated, ...visible.map((s) => s.site)]);
    return send(res, 200, Array.from(names).sort().map((name) => ({
      name, hosts: EMPTY ? 0 : HOSTS.filter((h) => h.site === name).length, models: EMPTY ? 0 : MODELS.filter((m) => m.site === name).length,
      open_violations: violations.filter((v) => v.site === name && v.status !== 'resolved').length,
    })));
  }
  if (method === 'POST' && p === '/sites') {
    requireAdmin(req);
    const b = await readJson(req);
    const name = typeof b.name === 'string' ? b.name.trim() : '';
    if (!name) throw new HttpError(400, 'name is required', 'name');
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new HttpError(400, 'name may hold letters, digits, dot, dash and underscore only', 'name');
    if (sitesCreated.has(name)) throw new HttpError(409, `site ${name} already exists`, 'name');
    sitesCreated.add(name);
    return send(res, 201, { name });
  }
  if (method === 'GET' && p === '/hosts') return send(res, 200, EMPTY ? [] : HOSTS.filter((h) => !site || h.site === site).map((h) => ({ site: h.site, host: h.host, last_seen: Date.now() - 2000 })));
  if (method === 'GET' && p === '/models') return send(res, 200, EMPTY ? [] : MODELS.filter((m) => !site || m.site === site));
  if (method === 'GET' && p === '/series') {
    return send(res, 200, visible.filter((s) => (!site || s.site === site) && (!q.get('host') || s.host === q.get('host')) &&
      (!q.get('model') || s.model === q.get('model')) && (!q.get('metric') || s.metric === q.get('metric'))).map(seriesJson));
  }
  if (method === 'GET' && p === '/overview') {
    const cells = [];
    for (const m of MODELS) {
      if (EMPTY || (site && m.site !== site)) continue;
      const ss = series.filter((s) => s.site === m.site && s.provider === m.provider && s.model === m.model);
      const js = ss.map(seriesJson);
      const open = js.reduce((a, s) => a + s.open_violations, 0);
      const first = js.find((s) => s.metric === 'latency_ms');
      cells.push({ site: m.site, provider: m.provider, model: m.model, status: open ? 'violation' : js.every((s) => s.status === 'learning') ? 'learning' : 'in_control', open_violations: open, series: ss.length, spark: first?.spark ?? [] });
    }
    return send(res, 200, { sites: Array.from(new Set(cells.map((c) => c.site))), models: Array.from(new Set(cells.map((c) => `${c.provider}/${c.model}`))), cells });
  }
  if (method === 'GET' && p === '/series/points') {
    const s = byKey.get(q.get('key') ?? '');
    if (!s || EMPTY) throw new HttpError(404, `unknown series key "${q.get('key') ?? ''}"`, 'key');
    const { from, to } = range(q);
    return send(res, 200, pointsResponse(s, from, to, Math.min(Number(q.get('max_points') ?? 2000) || 2000, 10000)));
  }
  if (method === 'GET' && p === '/telemetry') {
    if (!q.get('host')) throw new HttpError(400, 'host is required', 'host');
    const { from, to } = range(q);
    return send(res, 200, telemetry(q.get('site') ?? HOSTS.find((h) => h.host === q.get('host'))?.site, q.get('host'), from, to, Number(q.get('max_points') ?? 2000) || 2000));
  }
  if (method === 'GET' && p === '/compare') {
    const keys = q.getAll('key');
    if (keys.length < 1) throw new HttpError(400, 'give at least one key=', 'key');
    const { from, to } = range(q);
    return send(res, 200, { series: keys.map((k) => {
      const s = byKey.get(k);
      if (!s) throw new HttpError(404, `unknown series key "${k}"`, 'key');
      return pointsResponse(s, from, to, 2000);
    }) });
  }
  if (method === 'GET' && p === '/violations') {
    const all = filterViolations(q);
    const limit = Math.min(Number(q.get('limit') ?? 100) || 100, 1000);
    const start = q.get('cursor') ? Number(Buffer.from(q.get('cursor'), 'base64url').toString()) : 0;
    const items = all.slice(start, start + limit);
    const next = start + limit < all.length ? Buffer.from(String(start + limit)).toString('base64url') : null;
    return send(res, 200, { items, next_cursor: next });
  }
  if (method === 'GET' && p === '/violations.csv') {
    const cols = ['id', 'key', 'site', 'host', 'provider', 'model', 'metric', 'rule', 'rule_name', 'status', 'opened_at', 'last_point_at', 'resolved_at', 'acked_by', 'acked_at', 'ack_note'];
    const lines = [cols.join(',')];
    for (const v of filterViolations(q)) lines.push(cols.map((c) => csvCell(c.endsWith('_at') && v[c] ? new Date(v[c]).toISOString() : v[c])).join(','));
    return send(res, 200, lines.join('\n') + '\n', { 'Content-Type': 'text/csv; charset=utf-8', 'Content-Disposition': 'attachment; filename="violations.csv"' });
  }
  let m = /^\/violations\/([^/]+)(?:\/(ack|resolve))?$/.exec(p);
  if (m) {
    const v = violations.find((x) => String(x.id) === decodeURIComponent(m[1]));
    if (!v) throw new HttpError(404, `no violation ${decodeURIComponent(m[1])}`);
    if (method === 'GET' && !m[2]) return send(res, 200, detail(v));
    if (method === 'POST' && m[2]) {
      requireAdmin(req);
      const b = await readJson(req);
      if (!b.by || typeof b.by !== 'string') throw new HttpError(400, 'by is required: who acknowledges', 'by');
      if (m[2] === 'ack') {
        if (v.status === 'resolved') throw new HttpError(409, 'the violation is already resolved');
        Object.assign(v, { status: 'acknowledged', acked_by: b.by, acked_at: Date.now(), ack_note: b.note ?? null });
        broadcast('violation', { id: v.id, event: 'acknowledged', key: v.key, rule: v.rule });
      } else {
        Object.assign(v, { status: 'resolved', resolved_at: Date.now() });
        broadcast('violation', { id: v.id, event: 'resolved', key: v.key, rule: v.rule });
      }
      return send(res, 200, v);
    }
  }
  if (method === 'GET' && p === '/baselines') {
    const key = q.get('key');
    const rows = series.filter((s) => !s.learning && !EMPTY && (!key || s.key === key)).map((s, i) => ({
      id: i + 1, scope: 'series', site: s.site, host: s.host, provider: s.provider, model: s.model, metric: s.metric,
      center: round(s.center), sigma: round(s.sigma), k: 3, method: 'mr', transform: 'none', points: 50,
      window_from: s.since, window_to: s.since + 50 * STEP, mode: 'frozen', reason: 'first 50 points', created_by: 'collector', valid_from: s.since + 50 * STEP, valid_to: null,
    }));
    return send(res, 200, [...baselineHistory, ...rows]);
  }
  if (method === 'POST' && p === '/baselines/rebaseline') {
    requireAdmin(req);
    const b = await readJson(req);
    if (!b.site) throw new HttpError(400, 'site is required', 'site');
    if (!b.reason) throw new HttpError(400, 'reason is required', 'reason');
    const matching = series.filter((s) => s.site === b.site && (!b.host || s.host === b.host) && (!b.model || s.model === b.model) && (!b.metric || s.metric === b.metric));
    return send(res, 200, { created: matching.length });
  }
  if (method === 'GET' && p === '/rules') return send(res, 200, { defaults: RULE_DEFAULTS, configs: ruleConfigs });
  m = /^\/rules\/(global|site|model)\/([^/]+)$/.exec(p);
  if (m && method === 'PUT') {
    requireAdmin(req);
    const settings = await readJson(req);
    if (settings.rules && (!Array.isArray(settings.rules) || settings.rules.some((r) => !Number.isInteger(r) || r < 1 || r > 8))) throw new HttpError(400, 'rules: a list of rule numbers 1..8', 'rules');
    for (const k of Object.keys(settings.params ?? {})) if (!/^(rule)?[1-8]\.[a-z_]+$/.test(k)) throw new HttpError(400, `params.${k}: expected RULE.FIELD, e.g. 2.run`, `params.${k}`);
    const value = decodeURIComponent(m[2]);
    const existing = ruleConfigs.find((c) => c.scope_kind === m[1] && c.scope_value === value);
    const row = { scope_kind: m[1], scope_value: value, settings, updated_by: 'admin', updated_at: Date.now() };
    if (existing) Object.assign(existing, row);
    else ruleConfigs.push(row);
    return send(res, 200, row);
  }
  if (method === 'GET' && p === '/channels') return send(res, 200, channels);
  if (method === 'POST' && p === '/channels') {
    requireAdmin(req);
    const b = await readJson(req);
    if (!b.name) throw new HttpError(400, 'name is required', 'name');
    if (channels.some((c) => c.name === b.name)) throw new HttpError(409, `a channel named ${b.name} already exists`, 'name');
    if (!['webhook', 'slack', 'pagerduty', 'email'].includes(b.kind)) throw new HttpError(400, 'kind must be webhook, slack, pagerduty or email', 'kind');
    if ((b.kind === 'webhook' || b.kind === 'slack') && !/^https?:\/\//.test(b.config?.url ?? '')) throw new HttpError(400, 'config.url must be an http(s) URL', 'config.url');
    const c = { name: b.name, kind: b.kind, config: b.config ?? {}, has_secret: Boolean(b.secret), max_attempts: 8, source: 'api' };
    channels.push(c);
    return send(res, 201, c);
  }
  m = /^\/channels\/([^/]+)(\/test)?$/.exec(p);
  if (m) {
    const name = decodeURIComponent(m[1]);
    const c = channels.find((x) => x.name === name);
    if (!c) throw new HttpError(404, `no channel named ${name}`);
    if (method === 'DELETE') {
      requireAdmin(req);
      if (c.source === 'config') throw new HttpError(409, `channel ${name} comes from the config file`);
      channels.splice(channels.indexOf(c), 1);
      return send(res, 204, '');
    }
    if (method === 'POST' && m[2]) {
      requireAdmin(req);
      if (!c.config.url) return send(res, 200, { ok: false, status: null, response: '', error: `the mock cannot send ${c.kind} messages` });
      try {
        const r = await fetch(c.config.url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ test: true, text: 'LLMscope test alert' }), signal: AbortSignal.timeout(5000) });
        const text = (await r.text()).slice(0, 2000);
        return send(res, 200, { ok: r.ok, status: r.status, response: text, error: r.ok ? null : `the receiver answered ${r.status}` });
      } catch (e) {
        return send(res, 200, { ok: false, status: null, response: '', error: `could not reach ${c.config.url}: ${e.cause?.code ?? e.message}` });
      }
    }
  }
  if (method === 'GET' && p === '/routes') return send(res, 200, [...routes.slice().sort((a, b) => a.position - b.position), { default: true, channels: defaultRoute }]);
  if (method === 'POST' && p === '/routes') {
    requireAdmin(req);
    const b = await readJson(req);
    if (!Array.isArray(b.channels) || !b.channels.length) throw new HttpError(400, 'channels: name at least one channel', 'channels');
    for (const n of b.channels) if (!channels.some((c) => c.name === n)) throw new HttpError(400, `channels: no channel named ${n}`, 'channels');
    const r = { id: nextId++, position: b.position ?? routes.length + 1, matchers: b.matchers ?? {}, channels: b.channels, continue: Boolean(b.continue), source: 'api' };
    routes.push(r);
    return send(res, 201, r);
  }
  m = /^\/routes\/([^/]+)$/.exec(p);
  if (m && method === 'DELETE') {
    requireAdmin(req);
    const i = routes.findIndex((r) => String(r.id) === m[1]);
    if (i < 0) throw new HttpError(404, `no route ${m[1]}`);
    routes.splice(i, 1);
    return send(res, 204, '');
  }
  if (method === 'GET' && p === '/silences') {
    const state = q.get('state') ?? 'active';
    const rows = silences.map((s) => ({ ...s, state: silenceState(s) })).filter((s) => state === 'all' || (state === 'active' ? s.state !== 'expired' : s.state === 'expired'));
    return send(res, 200, rows);
  }
  if (method === 'POST' && p === '/silences') {
    requireAdmin(req);
    const b = await readJson(req);
    if (!b.matchers || !Object.keys(b.matchers).length) throw new HttpError(400, '`matchers` must have at least one label (an empty silence would mute everything)', 'matchers');
    if (!b.ends_at) throw new HttpError(400, 'ends_at is required', 'ends_at');
    if (!b.comment) throw new HttpError(400, 'comment is required', 'comment');
    if (!b.created_by) throw new HttpError(400, 'created_by is required', 'created_by');
    const s = { id: nextId++, matchers: b.matchers ?? {}, starts_at: b.starts_at ?? Date.now(), ends_at: b.ends_at, comment: b.comment, created_by: b.created_by, created_at: Date.now() };
    if (s.ends_at <= s.starts_at) throw new HttpError(400, 'ends_at must be after starts_at', 'ends_at');
    silences.push(s);
    return send(res, 201, { ...s, state: silenceState(s) });
  }
  m = /^\/silences\/([^/]+)$/.exec(p);
  if (m && method === 'DELETE') {
    requireAdmin(req);
    const s = silences.find((x) => String(x.id) === m[1]);
    if (!s) throw new HttpError(404, `no silence ${m[1]}`);
    s.ends_at = Date.now();
    return send(res, 200, { ...s, state: 'expired' });
  }
  if (method === 'GET' && p === '/tokens') return send(res, 200, tokens.map(({ secret: _secret, ...t }) => t));
  if (method === 'POST' && p === '/tokens') {
    requireAdmin(req);
    const b = await readJson(req);
    if (!b.admin && !b.site) throw new HttpError(400, 'site is required for an ingest token', 'site');
    const secret = `llms_${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    const t = { id: nextId++, site: b.admin ? null : b.site, role: b.admin ? 'admin' : 'ingest', name: b.name ?? null, created_at: Date.now(), revoked_at: null, secret };
    tokens.push(t);
    const { secret: _s, ...pub } = t;
    return send(res, 201, { ...pub, token: secret });
  }
  m = /^\/tokens\/([^/]+)$/.exec(p);
  if (m && method === 'DELETE') {
    requireAdmin(req);
    const t = tokens.find((x) => String(x.id) === m[1]);
    if (!t) throw new HttpError(404, `no token ${m[1]}`);
    t.revoked_at = Date.now();
    return send(res, 204, '');
  }
  if (method === 'GET' && p === '/deliveries') return send(res, 200, []);
  if (method === 'GET' && p === '/samples.csv') {
    const s = series.find((x) => x.site === q.get('site') && x.host === q.get('host') && x.model === q.get('model') && x.metric === 'latency_ms');
    const { from, to } = range(q);
    const lines = ['ts,site,host,provider,model,latency_ms'];
    if (s) for (const pt of pointsOf(s, from, to)) lines.push([new Date(pt.ts).toISOString(), s.site, s.host, s.provider, s.model, pt.value].map(csvCell).join(','));
    return send(res, 200, lines.join('\n') + '\n', { 'Content-Type': 'text/csv; charset=utf-8', 'Content-Disposition': 'attachment; filename="samples.csv"' });
  }
  if (method === 'GET' && p === '/events') {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write(': connected\n\n');
    clients.add(res);
    req.on('close', () => clients.delete(res));
    return;
  }
  throw new HttpError(404, `no such endpoint: ${method} /api/v1${p}`);
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json', '.ico': 'image/x-icon' };

function serveStatic(req, res, url) {
  const rel = decodeURIComponent(url.pathname).replace(/^\/+/, '');
  let file = path.join(DIST, rel);
  if (!file.startsWith(DIST) || !rel || !fs.existsSync(file) || fs.statSync(file).isDirectory()) file = path.join(DIST, 'index.html');
  if (!fs.existsSync(file)) return send(res, 503, { error: 'web/dist is missing: run npm run build in web/' });
  const hashed = rel.startsWith('assets/');
  res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Cache-Control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache' });
  fs.createReadStream(file).pipe(res);
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, `http://${req.headers.host ?? 'localhost'}`);
  try {
    if (url.pathname.startsWith('/api/')) await api(req, res, url);
    else if (req.method === 'GET' || req.method === 'HEAD') serveStatic(req, res, url);
    else send(res, 405, { error: 'method not allowed' });
  } catch (e) {
    if (e instanceof HttpError) send(res, e.status, e.field ? { error: e.message, field: e.field } : { error: e.message });
    else {
      console.error(e);
      send(res, 500, { error: String(e?.message ?? e) });
    }
  }
});
server.listen(PORT, HOST, () => {
  console.log(`mock LLMscope API on http://${HOST}:${PORT} (admin token ${ADMIN}${EMPTY ? ', empty' : ''}; ${violations.length} violations, ${violations.filter((v) => v.status === 'open').length} open)`);
});
