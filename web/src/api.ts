// Client for the collector's REST API (docs/api.md). The browser is signed in with the
// session cookie (HttpOnly, set by /api/v1/auth/login or the single sign-on callback); every
// change carries the session's CSRF token from /api/v1/auth/me in X-CSRF-Token. A 401 sends
// the user to the sign-in page and back.

import { navigate } from './router';

export type Status = 'in_control' | 'violation' | 'learning';

export interface Baseline {
  center: number;
  sigma: number;
  ucl: number;
  lcl: number;
  k?: number;
  points?: number;
  mode?: string;
  transform?: string;
  [k: string]: unknown;
}

export interface SeriesInfo {
  key: string;
  site: string;
  host: string;
  provider: string;
  model: string;
  metric: string;
  source?: string;
  status: Status;
  open_violations: number;
  last_value: number | null;
  last_ts: number | null;
  baseline: Baseline | null;
  spark: number[];
}

export interface SiteInfo {
  name: string;
  hosts: number;
  models: number;
  open_violations: number;
}

export interface HostInfo {
  site: string;
  host: string;
  last_seen: number | null;
}

export interface ModelInfo {
  site: string;
  provider: string;
  model: string;
}

export interface OverviewCell {
  site: string;
  provider: string;
  model: string;
  status: Status;
  open_violations: number;
  series: number;
  spark: number[];
}

export interface Overview {
  sites: string[];
  models: string[];
  cells: OverviewCell[];
}

export interface Point {
  ts: number;
  value: number;
  flags?: number[];
}

export interface Bucket {
  ts: number;
  min: number;
  max: number;
  mean: number;
  count: number;
}

export interface Flagged {
  ts: number;
  value: number;
  rules: number[];
  violation_id?: string | number | null;
}

/** A paging detector's episode on a series (CUSUM alarm, model down, error rate up…). */
export interface Alarm {
  violation_id: string;
  incident_id: string | null;
  detector: string;
  severity: string;
  title: string;
  from: number;
  to: number | null;
  last_point_at: number;
}

export interface PointsResp {
  key: string;
  baseline: Baseline | null;
  downsampled: boolean;
  points?: Point[];
  buckets?: Bucket[];
  flagged: Flagged[];
  alarms?: Alarm[];
}

export interface HostTelemetry {
  ts: number;
  cpu_pct: number | null;
  mem_used_bytes: number | null;
  mem_total_bytes: number | null;
  load1?: number | null;
}

export interface GpuPoint {
  ts: number;
  util_pct: number | null;
  mem_used_bytes: number | null;
  mem_total_bytes: number | null;
  temp_c: number | null;
  power_w: number | null;
}

export interface ServerSeries {
  target: string;
  model: string;
  /** requests_running | requests_waiting | kv_cache_usage_pct | ttft_mean_ms | e2e_mean_ms | preemptions | models_loaded | model_vram_bytes | … */
  metric: string;
  points: Array<{ ts: number; value: number | null }>;
}

export interface Telemetry {
  host: HostTelemetry[];
  gpus: Array<{
    gpu_index: number;
    name: string;
    uuid?: string;
    points: GpuPoint[];
    xid_errors?: Array<{ ts: number; xid: number }>;
    ecc_corrected_volatile?: number | null;
    ecc_uncorrected_volatile?: number | null;
  }>;
  mig_instances?: Array<{ gpu_index: number; mig_index: number; name: string; uuid: string; points: Array<{ ts: number; mem_used_bytes: number | null; mem_total_bytes: number | null }> }>;
  /** Gauges read from the host's model servers (vLLM /metrics, Ollama /api/ps). */
  server?: ServerSeries[];
}

/** The model server's gauges at the newest snapshot before a violation opened. */
export interface ServerAt {
  ts: number;
  metrics: Array<{ target: string; model: string; metric: string; value: number }>;
}

export interface Violation {
  id: string | number;
  key: string;
  site: string;
  host: string;
  provider: string;
  model: string;
  metric: string;
  source?: string;
  /** nelson | cusum | down | error_rate | silent | agent_silent */
  detector?: string;
  rule: number;
  rule_name?: string;
  rule_text?: string;
  severity?: string;
  /** Whether it is a page (critical or error). */
  page?: boolean;
  /** The incident it belongs to (its lead's id). */
  incident_id?: string | null;
  opened_at: number;
  last_point_at: number | null;
  resolved_at: number | null;
  status: string;
  acked_by: string | null;
  acked_at: number | null;
  ack_note: string | null;
}

export interface ViolationDetail extends Violation {
  points?: Array<{ ts: number; value: number }>;
  baseline?: Baseline | null;
  context?: { points?: Array<{ ts: number; value: number }>; telemetry?: Telemetry | null; server_at_open?: ServerAt | null };
}

/** One incident: one change of a model on a host, led by the page that opened it. */
export interface Incident {
  id: string;
  status: string;
  severity: string;
  title: string;
  site: string;
  host: string;
  provider: string;
  model: string;
  source: string;
  opened_at: number;
  last_point_at: number;
  resolved_at: number | null;
  pages: number;
  detectors: string[];
  metrics: string[];
  lead: Violation;
  members: Violation[];
}

export interface ReplicaRow {
  host: string;
  pid: number;
  grpc: string;
  http: string;
  cluster: string | null;
  started_at: number;
  seen_at: number;
}

export interface ClusterMember {
  id: string;
  host: string;
  http: string;
  grpc: string;
  started_ms: number;
}

/** `GET /api/v1/cluster`: one collector, or cluster mode with members and partition owners. */
export interface ClusterState {
  mode: 'single' | 'cluster';
  replica: string;
  replicas: ReplicaRow[];
  prefix?: string;
  partitions?: number;
  connected?: boolean;
  owned?: number[];
  members?: ClusterMember[];
  owners?: Array<string | null>;
  log?: { messages?: number; bytes?: number; max_bytes?: number; consumers?: number; error?: string };
  stats?: Record<string, number>;
}

export interface DetectionHost {
  site: string;
  host: string;
  provider: string;
  model: string;
  source: string;
  last_seen: number;
  judged_metrics: number;
  paging_metrics: string[];
  marker_arl0: number | null;
  interval_s?: number;
  calls_per_day?: number;
  false_pages_per_day?: { cusum: number; error_rate: number; total: number };
  false_markers_per_day?: number;
}

export interface CusumDesign {
  k: number;
  h: number;
  h_known: number;
  phase1: number;
  arl0_per_series: number;
  p_target: number;
  p_half: number;
  arl_1sigma: number;
  arl_2sigma: number;
}

export interface Detection {
  settings: {
    arl0: number;
    cusum_k: number;
    baseline_points: number;
    sigma_method: string;
    transform: string;
    down_after: number;
    error_rate: { p0: number; p1: number; h: number; arl0: number; arl1: number } | null;
    silent_factor: number;
    silent_min_s: number;
    silent_sources: string[];
    agent_silent_after_s: number;
    resolve_after: number;
  };
  design: { probe: CusumDesign | null; traffic: CusumDesign | null };
  model_hosts: DetectionHost[];
  fleet: { model_hosts: number; with_known_rate: number; false_pages_per_day: number; false_markers_per_day: number };
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface Channel {
  name: string;
  kind: string;
  /** `null` unless the caller is an admin (then with masked URLs). */
  config: Record<string, unknown> | null;
  has_secret: boolean;
  max_attempts?: number;
  source?: string;
}

export interface TestResult {
  ok: boolean;
  status: number | null;
  response: string | null;
  error: string | null;
}

export interface Route {
  id?: string | number;
  position?: number;
  matchers?: Record<string, unknown>;
  channels: string[];
  continue?: boolean;
  default?: boolean;
  source?: string;
}

export interface Silence {
  id: string | number;
  matchers: Record<string, unknown>;
  starts_at: number;
  ends_at: number;
  comment: string;
  created_by: string;
  created_at: number;
  state: string;
}

export interface Token {
  id: string | number;
  site: string | null;
  role: string;
  name: string | null;
  created_at: number;
  revoked_at: number | null;
}

export interface BaselineRow {
  id: string | number;
  scope: string;
  site: string | null;
  host: string | null;
  provider: string | null;
  model: string | null;
  metric: string | null;
  center: number;
  sigma: number;
  k: number;
  method: string;
  transform: string;
  points: number;
  window_from: number | null;
  window_to: number | null;
  mode: string;
  reason: string | null;
  created_by: string | null;
  valid_from: number | null;
  valid_to: number | null;
}

export interface RuleConfig {
  scope_kind: string;
  scope_value: string | null;
  settings: Record<string, unknown>;
  /** Points per false chart marker on a healthy series, for this configuration. */
  marker_arl0?: number | null;
  updated_by?: string | null;
  updated_at?: number | null;
}

export interface Setup {
  first_run: boolean;
  grpc_addr: string;
  /** The OTLP receivers' own addresses (null: off; OTLP is then on grpc_addr and the HTTP port). */
  otlp_grpc_addr?: string | null;
  otlp_http_addr?: string | null;
  version: string;
  /** Phase I size (`[spc] baseline_points`); older collectors leave it out. */
  baseline_points?: number;
}

export class ApiError extends Error {
  status: number;
  field?: string;
  constructor(status: number, message: string, field?: string) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

export type Role = 'viewer' | 'editor' | 'admin';

export interface User {
  id: string;
  email: string;
  name: string;
  role: Role;
  sites: string[] | null;
  disabled: boolean;
  created_at: number;
  last_login_at: number | null;
  has_password: boolean;
  oidc: boolean;
  /** Only in the answer that created the user without a password: shown once. */
  password?: string;
}

/** `/api/v1/auth/me`: who this browser is. */
export interface Me {
  signed_in: boolean;
  anonymous: boolean;
  actor: string;
  role: Role | null;
  sites: string[] | null;
  user: User | null;
  csrf: string | null;
  methods: { password: boolean; oidc: { name: string; start: string } | null };
}

export interface PersonalToken {
  id: string;
  name: string | null;
  created_at: number;
  revoked_at: number | null;
  /** Only in the answer that created it: shown once. */
  token?: string;
}

export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  role: string;
  client: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
}

const RANK: Record<Role, number> = { viewer: 1, editor: 2, admin: 3 };
let me: Me | null = null;

/** Who this browser is (null until loaded). */
export function currentMe(): Me | null {
  return me;
}

/** Asks the collector who this browser is; announces `llmscope:me`. */
export async function loadMe(): Promise<Me> {
  let res: Response;
  try {
    res = await fetch('/api/v1/auth/me', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  } catch {
    throw new ApiError(0, 'Cannot reach the collector — is it running?');
  }
  if (!res.ok) throw await errorFrom(res);
  me = (await res.json()) as Me;
  document.dispatchEvent(new CustomEvent('llmscope:me'));
  return me;
}

/** Whether the signed-in caller has at least `role`. */
export function can(role: Role): boolean {
  return !!me?.role && RANK[me.role] >= RANK[role];
}

/** Whether a signed-in user (not a wall screen) is acting: their name is recorded. */
export function isUser(): boolean {
  return !!me?.user;
}

/** Goes to the sign-in page, coming back here afterwards. */
export function toSignIn(reason?: string): void {
  if (location.pathname === '/signin') return;
  const q = new URLSearchParams({ next: location.pathname + location.search });
  if (reason) q.set('reason', reason);
  navigate(`/signin?${q.toString()}`, true);
}

/** Builds `/api/v1/<path>?<params>`, skipping empty values; arrays repeat the key. */
export function url(path: string, params?: Record<string, string | number | boolean | null | undefined | string[]>): string {
  const q = new URLSearchParams();
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v === null || v === undefined || v === '') continue;
      if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
      else q.set(k, String(v));
    }
  }
  const s = q.toString();
  return `/api/v1/${path}${s ? `?${s}` : ''}`;
}

async function errorFrom(res: Response): Promise<ApiError> {
  let message = `${res.status} ${res.statusText}`.trim();
  let fieldName: string | undefined;
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text) as { error?: unknown; field?: unknown };
      if (typeof body.error === 'string' && body.error) message = body.error;
      if (typeof body.field === 'string' && body.field) fieldName = body.field;
    } catch {
      if (text && text.length < 300) message = `${message}: ${text}`;
    }
  } catch {
    /* keep the status line */
  }
  return new ApiError(res.status, message, fieldName);
}

export async function get<T>(path: string, params?: Parameters<typeof url>[1], signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url(path, params), { headers: { Accept: 'application/json' }, credentials: 'same-origin', signal });
  } catch (e) {
    if ((e as Error).name === 'AbortError') throw e;
    throw new ApiError(0, 'Cannot reach the collector — is it running?');
  }
  if (!res.ok) {
    const e = await errorFrom(res);
    if (res.status === 401) toSignIn(e.message);
    throw e;
  }
  return (await res.json()) as T;
}

/** A change: POST/PUT/PATCH/DELETE with the session's CSRF token. */
export async function mutate<T>(method: 'POST' | 'PUT' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url(path), {
      method,
      credentials: 'same-origin',
      headers: {
        Accept: 'application/json',
        ...(me?.csrf ? { 'X-CSRF-Token': me.csrf } : {}),
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'Cannot reach the collector — is it running?');
  }
  if (!res.ok) {
    const e = await errorFrom(res);
    if (res.status === 401) toSignIn(e.message);
    throw e;
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.field && !e.message.includes(e.field) ? `${e.message} (${e.field})` : e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

export function isAbort(e: unknown): boolean {
  return e instanceof Error && e.name === 'AbortError';
}

/** The displayed status of a violation: an open one that someone acknowledged reads "acknowledged". */
export function violationStatus(v: Violation): string {
  if (v.status === 'open' && v.acked_at) return 'acknowledged';
  return v.status;
}

/** GET /api/v1/abtest */
export interface AbTest {
  a: string;
  b: string;
  metric: string;
  n_a: number;
  n_b: number;
  welch: { t: number; df: number; p_value: number; scale: string };
  mann_whitney: { u: number; z: number; p_value: number };
  hodges_lehmann: { shift: number; ci: [number, number]; unit: string };
  ratio: { estimate: number; ci: [number, number] };
  effective_n: { a: number; b: number };
  lag1: { a: number; b: number };
  warning: string | null;
  verdict: string;
}

/** One capability index with its 95 % interval. */
export interface CapIndex {
  estimate: number;
  ci: [number, number];
}

/** GET /api/v1/capability */
export interface CapabilityResp {
  key: string;
  metric: string;
  n: number;
  scale: string;
  usl: number;
  lsl: number | null;
  mean: number;
  cp: CapIndex | null;
  cpk: CapIndex;
  pp: CapIndex | null;
  ppk: CapIndex;
  ppk_percentile: number | null;
  above_usl: number;
  histogram: { edges: number[]; counts: number[]; fitted: number[] };
  note: string;
}
