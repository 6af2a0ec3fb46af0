import {
  can,
  get,
  mutate,
  type BaselineRow,
  type Channel,
  type ClusterState,
  type Detection,
  type RuleConfig,
  type Route,
  type Silence,
  type SiteInfo,
  type Token,
} from '../api';
import { codeBlock, emptyState, field, h, mount, notice, type Child } from '../dom';
import { fmtNum, fromLocalInput, metricLabel, METRICS, timeEl, toLocalInput } from '../format';
import { updateParams } from '../router';
import { RULES } from '../rules';
import type { PageCtx } from '../page';
import { card, loading, pageHead, showError, statusBadge, withButton } from '../ui';
import { channelForm, sendTest } from './channels';

const TABS: Array<[string, string]> = [
  ['channels', 'Channels'],
  ['routes', 'Routes'],
  ['silences', 'Silences'],
  ['detection', 'Detection'],
  ['rules', 'Rules'],
  ['tokens', 'Ingest tokens'],
  ['baselines', 'Baselines'],
  ['cluster', 'Cluster'],
];

/** A card explaining which role a form needs, shown instead of the form. */
function needs(role: 'editor' | 'admin', what: string): HTMLElement {
  return h('p', { class: 'muted small', testid: `needs-${role}` }, `${what} needs the ${role} role.`);
}

export async function settingsPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  // ingest tokens are the admins' business
  const tabsShown = TABS.filter(([k]) => k !== 'tokens' || can('admin'));
  const tab = tabsShown.some(([k]) => k === ctx.params.get('tab')) ? ctx.params.get('tab')! : 'channels';
  const panel = h('div', { class: 'tab-panel', role: 'tabpanel', id: 'settings-panel', testid: `panel-${tab}`, 'aria-labelledby': `tab-${tab}` });
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Settings' },
    ...tabsShown.map(([k, l]) => h('button', {
      type: 'button', role: 'tab', id: `tab-${k}`, 'aria-selected': String(k === tab), 'aria-controls': 'settings-panel', tabindex: k === tab ? '0' : '-1',
      class: k === tab ? 'active' : '', testid: `tab-${k}`, on: { click: () => updateParams({ tab: k }) },
    }, l)));
  tabs.addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
    const i = tabsShown.findIndex(([k]) => k === tab);
    const next = tabsShown[(i + (ev.key === 'ArrowRight' ? 1 : tabsShown.length - 1)) % tabsShown.length]![0];
    updateParams({ tab: next }, true);
    requestAnimationFrame(() => document.getElementById(`tab-${next}`)?.focus());
  });
  view.append(pageHead('Settings', 'Where alerts go, when they stay quiet, how rules judge, who may send data.'), tabs, panel);
  const fn = { channels: channelsTab, routes: routesTab, silences: silencesTab, detection: detectionTab, rules: rulesTab, tokens: tokensTab, baselines: baselinesTab, cluster: clusterTab }[tab as 'channels'];
  await fn(panel, ctx);
}

function wide<T extends HTMLElement>(el: T): T {
  el.classList.add('span-2');
  return el;
}

function table(testid: string, headers: string[], rows: HTMLElement[]): HTMLElement {
  return h('div', { class: 'table-scroll' }, h('table', { class: 'table', testid },
    h('thead', null, h('tr', null, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, ...rows)));
}

function matcherChips(m: Record<string, unknown> | undefined): Child {
  const entries = Object.entries(m ?? {}).filter(([, v]) => v !== null && v !== undefined && v !== '');
  if (!entries.length) return h('span', { class: 'muted' }, 'everything');
  return h('span', { class: 'chips' }, ...entries.map(([k, v]) => h('span', { class: 'chip' }, `${k}=${Array.isArray(v) ? v.join('|') : String(v)}`)));
}

function confirmBtn(label: string, testid: string, question: string, action: (btn: HTMLButtonElement) => Promise<void>, dataset?: Record<string, string>): HTMLButtonElement {
  const b = h('button', { class: 'btn btn-small btn-danger', type: 'button', testid, dataset }, label);
  b.addEventListener('click', async () => {
    if (!window.confirm(question)) return;
    await action(b);
  });
  return b;
}

// ---------------------------------------------------------------- channels

async function channelsTab(panel: HTMLElement, ctx: PageCtx): Promise<void> {
  const listSlot = h('div', null, loading());
  const msg = h('div');
  const testSlot = h('div', { testid: 'channel-test-slot' });
  panel.append(
    card('Channels', h('p', { class: 'muted small' }, 'Where alerts are delivered. Channels from the config file are read-only here; secrets are never shown.'), msg, listSlot, testSlot),
    can('admin') ? card('Add a channel', channelForm({
      idPrefix: 'channel',
      onCreated: (c) => {
        mount(msg, notice('ok', `Channel ${c.name} created. Send a test to check the receiver.`, 'channel-created'));
        void load();
      },
    })) : needs('admin', 'Adding channels, changing them and sending tests'),
  );
  const load = async () => {
    try {
      const chans = await get<Channel[]>('channels', undefined, ctx.signal);
      if (!chans.length) {
        mount(listSlot, emptyState('No channels yet.', 'Add one below — a webhook, Slack, PagerDuty or email — then send a test.', 'channels-empty'));
        return;
      }
      mount(listSlot, table('channels-table', ['Name', 'Kind', 'Target', 'Secret', 'Source', ''], chans.map((c) => {
        const test = h('button', { class: 'btn btn-small', type: 'button', testid: 'channel-test', dataset: { name: c.name } }, 'Send test');
        test.addEventListener('click', () => void sendTest(c.name, test, testSlot));
        // the target (its secrets masked) is shown to admins only
        const conf = c.config ?? null;
        const target = !conf ? 'hidden' : c.kind === 'email' ? (Array.isArray(conf.to) ? (conf.to as string[]).join(', ') : String(conf.to ?? '')) : String(conf.url ?? '—');
        return h('tr', { testid: 'channel-row', dataset: { name: c.name } },
          h('td', { class: 'mono' }, c.name), h('td', null, c.kind), h('td', { class: 'truncate', title: target }, target),
          h('td', null, c.has_secret ? 'set' : h('span', { class: 'muted' }, 'none')), h('td', null, c.source ?? 'api'),
          h('td', { class: 'row-actions' }, can('admin') ? test : null, c.source === 'config' || !can('admin') ? null : confirmBtn('Delete', 'channel-delete', `Delete channel ${c.name}? Routes that use it stop delivering to it.`, async (b) => {
            await withButton(b, msg, () => mutate('DELETE', `channels/${encodeURIComponent(c.name)}`));
            void load();
          }, { name: c.name })));
      })));
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(listSlot, e);
    }
  };
  await load();
}

// ---------------------------------------------------------------- routes

async function routesTab(panel: HTMLElement, ctx: PageCtx): Promise<void> {
  const listSlot = h('div', null, loading());
  const msg = h('div');
  const formSlot = h('div');
  panel.append(card('Routes', h('p', { class: 'muted small' }, 'Checked top to bottom; the first route whose matchers all match a violation sends it, and stops unless “continue” is set. Unmatched violations go to the default route.'), msg, listSlot), can('admin') ? card('Add a route', formSlot) : needs('admin', 'Changing routes'));
  let channels: Channel[] = [];
  const load = async () => {
    try {
      const [routes, chans] = await Promise.all([get<Route[]>('routes', undefined, ctx.signal), get<Channel[]>('channels', undefined, ctx.signal)]);
      channels = chans;
      const rows = routes.filter((r) => !r.default).sort((a, b) => (a.position ?? 0) - (b.position ?? 0));
      const def = routes.find((r) => r.default);
      const trs = rows.map((r) => h('tr', { testid: 'route-row', dataset: { id: String(r.id) } },
        h('td', { class: 'num' }, String(r.position ?? '')), h('td', null, matcherChips(r.matchers)), h('td', null, r.channels.join(', ')),
        h('td', null, r.continue ? 'yes' : 'no'), h('td', null, r.source ?? 'api'),
        h('td', { class: 'row-actions' }, r.source === 'config' || !can('admin') ? null : confirmBtn('Delete', 'route-delete', 'Delete this route?', async (b) => {
          await withButton(b, msg, () => mutate('DELETE', `routes/${encodeURIComponent(String(r.id))}`));
          void load();
        }))));
      if (def) trs.push(h('tr', { class: 'row-default', testid: 'route-default' }, h('td', null, '—'), h('td', null, h('em', null, 'default (anything unmatched)')), h('td', null, def.channels.join(', ') || h('span', { class: 'muted' }, 'none')), h('td', null, '—'), h('td', null, '—'), h('td')));
      mount(listSlot, trs.length ? table('routes-table', ['#', 'Matchers', 'Channels', 'Continue', 'Source', ''], trs) : emptyState('No routes.', 'Add a route below to send some violations to a channel.', 'routes-empty'));
      renderForm();
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(listSlot, e);
    }
  };
  const renderForm = () => {
    const inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {
      site: h('input', { type: 'text', testid: 'route-site', placeholder: 'any' }),
      model: h('input', { type: 'text', testid: 'route-model', placeholder: 'any' }),
      metric: h('select', { testid: 'route-metric' }, h('option', { value: '' }, 'any'), ...METRICS.map(([k, l]) => h('option', { value: k }, l))),
      rule: h('select', { testid: 'route-rule' }, h('option', { value: '' }, 'any'), ...RULES.map((r) => h('option', { value: String(r.n) }, `${r.n} · ${r.name}`))),
      severity: h('select', { testid: 'route-severity' }, h('option', { value: '' }, 'any'), h('option', { value: 'critical' }, 'critical'), h('option', { value: 'warning' }, 'warning'), h('option', { value: 'info' }, 'info')),
    };
    const boxes = channels.map((c) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: c.name, testid: 'route-channel', dataset: { name: c.name } }), c.name));
    const cont = h('input', { type: 'checkbox', testid: 'route-continue' });
    const errors = h('div');
    const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'route-create' }, 'Add route');
    const form = h('form', { class: 'stack', novalidate: true },
      h('p', { class: 'muted small' }, 'Empty matchers match anything; prefix a value with ~ for a regular expression (e.g. ~eu-.*).'),
      h('div', { class: 'form-grid' }, field('Site', inputs.site!), field('Model', inputs.model!), field('Metric', inputs.metric!), field('Rule', inputs.rule!), field('Severity', inputs.severity!)),
      h('fieldset', { class: 'checks' }, h('legend', null, 'Send to'), ...(boxes.length ? boxes : [h('span', { class: 'muted small' }, 'No channels yet — add one on the Channels tab first.')])),
      h('label', { class: 'check' }, cont, 'Continue to later routes after this one matches'),
      errors, h('div', { class: 'actions' }, submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const chosen = boxes.map((b) => b.querySelector('input')!).filter((i) => i.checked).map((i) => i.value);
      if (!chosen.length) return mount(errors, notice('error', 'Send to: tick at least one channel.', 'route-validation'));
      const matchers: Record<string, unknown> = {};
      for (const [k, el] of Object.entries(inputs)) {
        const v = el.value.trim();
        if (v) matchers[k] = k === 'rule' ? Number(v) : v;
      }
      const ok = await withButton(submit, errors, () => mutate<Route>('POST', 'routes', { matchers, channels: chosen, continue: cont.checked }));
      if (ok) {
        mount(msg, notice('ok', 'Route added.', 'route-created'));
        void load();
      }
    });
    mount(formSlot, form);
  };
  await load();
}

// ---------------------------------------------------------------- silences

async function silencesTab(panel: HTMLElement, ctx: PageCtx): Promise<void> {
  const state = ['active', 'expired', 'all'].includes(ctx.params.get('state') ?? '') ? ctx.params.get('state')! : 'active';
  const listSlot = h('div', null, loading());
  const msg = h('div');
  const stateSel = h('select', { testid: 'silence-state', 'aria-label': 'Show', on: { change: (e) => updateParams({ state: (e.target as HTMLSelectElement).value }) } },
    ...[['active', 'Active'], ['expired', 'Expired'], ['all', 'All']].map(([v, l]) => h('option', { value: v!, selected: v === state }, l!)));

  const m = {
    site: h('input', { type: 'text', testid: 'silence-site', placeholder: 'any', value: ctx.site }),
    host: h('input', { type: 'text', testid: 'silence-host', placeholder: 'any' }),
    model: h('input', { type: 'text', testid: 'silence-model', placeholder: 'any' }),
    metric: h('select', { testid: 'silence-metric' }, h('option', { value: '' }, 'any'), ...METRICS.map(([k, l]) => h('option', { value: k }, l))),
    rule: h('select', { testid: 'silence-rule' }, h('option', { value: '' }, 'any'), ...RULES.map((r) => h('option', { value: String(r.n) }, `${r.n} · ${r.name}`))),
  };
  const ends = h('input', { type: 'datetime-local', testid: 'silence-ends', value: toLocalInput(Date.now() + 2 * 3600_000) });
  const quick = h('span', { class: 'quick' }, ...([['1 h', 1], ['4 h', 4], ['1 d', 24], ['1 w', 168]] as Array<[string, number]>).map(([l, hrs]) =>
    h('button', { type: 'button', class: 'btn btn-small btn-ghost', testid: `silence-for-${hrs}h`, on: { click: () => (ends.value = toLocalInput(Date.now() + hrs * 3600_000)) } }, l)));
  const comment = h('input', { type: 'text', testid: 'silence-comment', placeholder: 'e.g. deploying vLLM 0.6 on gpu-2' });
  const errors = h('div');
  const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'silence-create' }, 'Create silence');
  const form = h('form', { class: 'stack', novalidate: true, testid: 'silence-form' },
    h('p', { class: 'muted small' }, 'Matching violations are still recorded, but no alert is sent until the silence ends. Set at least one matcher; prefix a value with ~ for a regular expression (e.g. ~gpu-.*).'),
    h('div', { class: 'form-grid' }, field('Site', m.site), field('Host', m.host), field('Model', m.model), field('Metric', m.metric), field('Rule', m.rule)),
    h('div', { class: 'form-grid' }, h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Ends'), ends, quick), field('Comment', comment)),
    errors, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const problems: string[] = [];
    const end = fromLocalInput(ends.value);
    if (end === null) problems.push('Ends: pick when the silence ends.');
    else if (end <= Date.now()) problems.push('Ends: must be in the future.');
    if (!Object.values(m).some((el) => el.value.trim())) problems.push('Matchers: set at least one (site, host, model, metric or rule) — an empty silence would mute everything.');
    if (!comment.value.trim()) problems.push('Comment: say why alerts are silenced (e.g. the maintenance).');
    if (problems.length) return mount(errors, h('div', { class: 'notice notice-error', role: 'alert', testid: 'silence-validation' }, h('ul', null, ...problems.map((p) => h('li', null, p)))));
    const matchers: Record<string, unknown> = {};
    for (const [k, el] of Object.entries(m)) {
      const v = el.value.trim();
      if (v) matchers[k] = k === 'rule' ? Number(v) : v;
    }
    // the signed-in user is recorded as its author
    const created = await withButton(submit, errors, () => mutate<Silence>('POST', 'silences', { matchers, ends_at: end, comment: comment.value.trim() }));
    if (created) {
      comment.value = '';
      mount(msg, notice('ok', `Silence created until ${new Date(created.ends_at ?? end!).toLocaleString()}.`, 'silence-created'));
      await load();
    }
  });

  panel.append(card(h('span', { class: 'card-title-row' }, 'Silences', stateSel), msg, listSlot), can('editor') ? card('Create a silence', form) : needs('editor', 'Silencing alerts'));

  const load = async () => {
    try {
      const list = await get<Silence[]>('silences', { state }, ctx.signal);
      if (!list.length) {
        mount(listSlot, emptyState(state === 'expired' ? 'No expired silences.' : 'No active silences — alerts flow normally.', 'Create one below before planned maintenance, or from a deploy pipeline with POST /api/v1/silences.', 'silences-empty'));
        return;
      }
      mount(listSlot, table('silences-table', ['Matchers', 'Starts', 'Ends', 'Comment', 'Created by', 'State', ''], list.map((s) =>
        h('tr', { testid: 'silence-row', dataset: { id: String(s.id), state: s.state } },
          h('td', null, matcherChips(s.matchers)), h('td', null, timeEl(s.starts_at)), h('td', null, timeEl(s.ends_at)),
          h('td', { testid: 'silence-comment-cell' }, s.comment), h('td', null, s.created_by), h('td', null, statusBadge(s.state)),
          h('td', { class: 'row-actions' }, s.state === 'expired' || !can('editor') ? null : confirmBtn('Expire', 'silence-expire', 'Expire this silence now? Alerts resume at once.', async (b) => {
            await withButton(b, msg, () => mutate('DELETE', `silences/${encodeURIComponent(String(s.id))}`));
            void load();
          }))))));
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(listSlot, e);
    }
  };
  await load();
}

// ---------------------------------------------------------------- rules

interface RuleSettings {
  rules?: number[];
  params?: Record<string, unknown>;
  resolve_after?: number;
  marker_arl0?: number | null;
}

/** Expected false markers of a rule configuration, per chart: per 1 000 points and a day at 15 s. */
function markerRate(arl: number | null | undefined): HTMLElement {
  if (!arl) return h('span', { class: 'muted' }, 'no rule on: no markers');
  return h('span', { testid: 'rules-marker-rate', dataset: { arl: String(arl) } },
    `one false marker per ${Math.round(arl).toLocaleString()} points of a healthy series — ${fmtNum((1000 / arl), 3)} per 1 000 points, ${fmtNum(5760 / arl, 3)} a day per chart at a probe every 15 s`);
}

const fmtDay = (x: number | undefined): string => (x === undefined ? '—' : x >= 10 ? x.toFixed(0) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2));

async function detectionTab(panel: HTMLElement, ctx: PageCtx): Promise<void> {
  const slot = h('div', null, loading());
  panel.append(slot);
  try {
    const d = await get<Detection>('detection', { site: ctx.site }, ctx.signal);
    const s = d.settings;
    const p = d.design.probe;
    const figures = h('div', { class: 'figures' },
      h('div', { class: 'card' }, h('div', { class: 'figure', testid: 'fleet-false-pages' }, fmtDay(d.fleet.false_pages_per_day)),
        h('div', { class: 'figure-note' }, `expected false pages a day for the ${d.fleet.with_known_rate} model-host${d.fleet.with_known_rate === 1 ? '' : 's'} at their current probe rates`)),
      h('div', { class: 'card' }, h('div', { class: 'figure', testid: 'fleet-false-markers' }, fmtDay(d.fleet.false_markers_per_day)),
        h('div', { class: 'figure-note' }, 'expected Nelson-rule chart markers a day (shown on the charts and in incidents, never paged by default)')),
      h('div', { class: 'card' }, h('div', { class: 'figure' }, p ? `~${Math.round(p.arl_1sigma)} probes` : '—'),
        h('div', { class: 'figure-note' }, `to page on a sustained 1σ shift (≈ +35 % latency at a log-sd of 0.3); ~${p ? Math.round(p.arl_2sigma) : '?'} on 2σ`)));
    const row = (k: string, v: string) => h('tr', null, h('th', { scope: 'row' }, k), h('td', null, v));
    const settings = h('table', { class: 'kv', testid: 'detection-settings' },
      row('Paging CUSUM', `two-sided, k = ${fmtNum(s.cusum_k)}σ on ${s.transform === 'log' ? 'ln' : 'raw'} values; designed for one false page per ${s.arl0.toLocaleString()} probes per model-host (spc.arl0)`),
      row('Decision interval', p ? `h = ${fmtNum(p.h)} for a Phase I of ${p.phase1} points (h = ${fmtNum(p.h_known)} if the baseline were known exactly; the extra pays for estimating it: ${Math.round(p.p_target * 100)} % of series reach the target on their own, ${Math.round(p.p_half * 100)} % half of it)` : '—'),
      row('Baseline (Phase I)', `${s.baseline_points} points, σ ${s.sigma_method}, transform ${s.transform}`),
      row('Model down', `${s.down_after} failed calls in a row`),
      row('Error rate', s.error_rate ? `Bernoulli CUSUM: ${fmtNum(s.error_rate.p0 * 100)} % → ${fmtNum(s.error_rate.p1 * 100)} % caught in ~${Math.round(s.error_rate.arl1)} calls; one false page per ${Math.round(s.error_rate.arl0).toLocaleString()} calls` : '—'),
      row('Silence', `no call for ${s.silent_factor}× the median interval (at least ${s.silent_min_s} s), for ${s.silent_sources.join(', ')}; agent silent after ${s.agent_silent_after_s} s without telemetry`),
      row('Rule markers', `Nelson rules 1–8 as configured (Rules tab); episodes end after ${s.resolve_after} quiet points`));
    const rows = d.model_hosts.map((m) => h('tr', { testid: 'detection-row' },
      h('td', null, m.site), h('td', null, m.host), h('td', null, `${m.provider}/${m.model}`), h('td', null, m.source),
      h('td', { class: 'num' }, m.interval_s ? `${fmtNum(m.interval_s)} s` : '—'),
      h('td', null, m.paging_metrics.map(metricLabel).join(', ')),
      h('td', { class: 'num', testid: 'detection-row-pages' }, fmtDay(m.false_pages_per_day?.total)),
      h('td', { class: 'num' }, fmtDay(m.false_markers_per_day))));
    mount(slot, figures,
      card('How pages are decided', settings),
      card('Per model-host', rows.length
        ? table('detection-table', ['Site', 'Host', 'Model', 'Source', 'Probe interval', 'Pages on', 'False pages / day', 'Markers / day'], rows)
        : emptyState('No model-host has sent data yet.', 'Figures appear once an agent probes a model.', 'detection-empty')));
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showError(slot, e);
  }
}

/** A stable colour per replica id, for the partition map. */
function replicaColour(id: string | null): string {
  if (!id) return 'var(--border)';
  let x = 0;
  for (const c of id) x = (x * 31 + c.charCodeAt(0)) >>> 0;
  return `hsl(${x % 360} 55% 52%)`;
}

async function clusterTab(panel: HTMLElement, ctx: PageCtx): Promise<void> {
  const slot = h('div', null, loading());
  panel.append(slot);
  try {
    const c = await get<ClusterState>('cluster', undefined, ctx.signal);
    const row = (k: string, v: Child) => h('tr', null, h('th', { scope: 'row' }, k), h('td', null, v));
    const replicas = c.replicas.map((r) => h('tr', { testid: 'replica-row' },
      h('td', null, r.host), h('td', { class: 'num' }, String(r.pid)), h('td', null, r.http), h('td', null, r.grpc),
      h('td', null, r.cluster ?? '—'), h('td', null, timeEl(r.started_at)), h('td', null, timeEl(r.seen_at))));
    const replicaTable = table('replicas-table', ['Host', 'PID', 'HTTP', 'gRPC', 'Cluster', 'Started', 'Heartbeat'], replicas);
    if (c.mode === 'single') {
      mount(slot,
        card('One collector', h('p', { class: 'muted small', testid: 'cluster-mode' },
          'This collector judges every series itself (no cluster mode). A second collector on the same database refuses to start unless both run in cluster mode: give every replica the same NATS server with JetStream (cluster.nats_url, --nats-url or LLMSCOPE_NATS_URL).'),
          codeBlock('llmscope-collector serve --database-url postgres://… --nats-url nats://nats:4222', 'cluster-command')),
        card('Replicas on this database', replicaTable));
      return;
    }
    const owners = c.owners ?? [];
    const members = c.members ?? [];
    const counts = new Map<string, number>();
    for (const o of owners) if (o) counts.set(o, (counts.get(o) ?? 0) + 1);
    const free = owners.filter((o) => !o).length;
    const map = h('div', { class: 'partition-map', testid: 'partition-map', role: 'img', 'aria-label': `${owners.length} partitions, ${free} without an owner` },
      ...owners.map((o, i) => h('span', { class: 'partition-cell', title: `partition ${i}: ${o ?? 'no owner'}`, style: { background: replicaColour(o) } })));
    const memberRows = members.map((m) => h('tr', { testid: 'member-row' },
      h('td', null, h('span', { class: 'swatch', style: { background: replicaColour(m.id) } }), ' ', m.id, m.id === c.replica ? h('span', { class: 'muted small' }, ' (this one)') : ''),
      h('td', null, m.host), h('td', null, m.http), h('td', { class: 'num' }, String(counts.get(m.id) ?? 0)), h('td', null, timeEl(m.started_ms))));
    const log = c.log ?? {};
    const s = c.stats ?? {};
    mount(slot,
      h('div', { class: 'figures' },
        h('div', { class: 'card' }, h('div', { class: 'figure', testid: 'cluster-mode' }, `${members.length} replica${members.length === 1 ? '' : 's'}`),
          h('div', { class: 'figure-note' }, `cluster mode, NATS prefix ${c.prefix}; ${c.connected ? 'this replica reaches NATS' : 'this replica cannot reach NATS: ingest answers UNAVAILABLE'}`)),
        h('div', { class: 'card' }, h('div', { class: 'figure' }, `${(c.partitions ?? 0) - free} / ${c.partitions}`),
          h('div', { class: 'figure-note' }, free ? `partitions with an owner; ${free} wait for one (a replica left; another takes them within the lease time)` : 'partitions with an owner: every model-host is judged by one replica')),
        h('div', { class: 'card' }, h('div', { class: 'figure', testid: 'cluster-log' }, log.messages === undefined ? '—' : fmtNum(log.messages)),
          h('div', { class: 'figure-note' }, 'log messages not yet both stored and judged (a growing number means the database or a partition owner lags)'))),
      card('Partition owners', map, table('members-table', ['Replica', 'Host', 'HTTP', 'Partitions', 'Started'], memberRows)),
      card('This replica', h('table', { class: 'kv', testid: 'cluster-stats' },
        row('Replica', c.replica),
        row('Owns', `${(c.owned ?? []).length} partitions`),
        row('Judged', `${fmtNum(s.judged_messages ?? 0)} log messages; ${fmtNum(s.caught_up_messages ?? 0)} read again on takeovers`),
        row('Stored', `${fmtNum(s.stored_messages ?? 0)} log messages; ${fmtNum(s.stored_on_takeover ?? 0)} on takeovers`),
        row('Partitions taken', `${fmtNum(s.takeovers ?? 0)} since start (at start, when replicas join or leave, after a crash)`))),
      card('Replicas on this database', replicaTable));
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showError(slot, e);
  }
}

async function rulesTab(panel: HTMLElement, ctx: PageCtx): Promise<void> {
  const listSlot = h('div', null, loading());
  const formSlot = h('div');
  const msg = h('div');
  panel.append(card('Rule configuration', h('p', { class: 'muted small' }, 'The most specific configuration wins: model, then site, then global, then the defaults. Nelson rules mark the charts and list as evidence in incidents; they page only where [alerts] severity makes a rule critical or error. Each configuration shows how often it marks a healthy series by chance (simulated with the configured Phase I); the Detection tab gives the figure per day at each series’ own probe rate.'), msg, listSlot), can('editor') ? card('Edit a configuration', formSlot) : needs('editor', 'Changing rule settings'));
  let defaults: RuleSettings = {};

  const describe = (s: RuleSettings): HTMLElement => h('div', { class: 'rule-summary' },
    h('div', null, h('span', { class: 'muted' }, 'Rules on: '), s.rules ? (s.rules.length ? s.rules.join(', ') : 'none') : 'inherited'),
    s.params && Object.keys(s.params).length ? h('div', null, h('span', { class: 'muted' }, 'Parameters: '), Object.entries(s.params).map(([k, v]) => `${k}=${String(v)}`).join(', ')) : null,
    s.resolve_after !== undefined ? h('div', null, h('span', { class: 'muted' }, 'Resolve after: '), `${s.resolve_after} points`) : null,
    s.marker_arl0 !== undefined ? h('div', null, h('span', { class: 'muted' }, 'Expected: '), markerRate(s.marker_arl0)) : null);

  const renderForm = (init?: RuleConfig) => {
    const s = (init?.settings ?? {}) as RuleSettings;
    const kind = h('select', { testid: 'rules-scope-kind' }, ...['global', 'site', 'model'].map((k) => h('option', { value: k, selected: k === (init?.scope_kind ?? 'site') }, k)));
    const value = h('input', { type: 'text', testid: 'rules-scope-value', placeholder: 'site or model name', value: init?.scope_value ?? (ctx.site || '') });
    const enabled = new Set(s.rules ?? defaults.rules ?? RULES.map((r) => r.n));
    const boxes = RULES.map((r) => h('label', { class: 'check', title: r.text }, h('input', { type: 'checkbox', value: String(r.n), checked: enabled.has(r.n), testid: `rules-enable-${r.n}` }), `${r.n} · ${r.name}`));
    const params = h('textarea', { testid: 'rules-params', rows: '4', placeholder: '2.run = 9\n5.k = 2\n8.both_sides = true', spellcheck: 'false' });
    params.value = Object.entries(s.params ?? {}).map(([k, v]) => `${k} = ${String(v)}`).join('\n');
    const resolve = h('input', { type: 'number', min: '1', testid: 'rules-resolve-after', value: s.resolve_after !== undefined ? String(s.resolve_after) : (defaults.resolve_after !== undefined ? String(defaults.resolve_after) : '') });
    const errors = h('div');
    const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'rules-save' }, 'Save');
    const syncKind = () => {
      value.disabled = kind.value === 'global';
      if (kind.value === 'global') value.value = '';
    };
    kind.addEventListener('change', syncKind);
    syncKind();
    const form = h('form', { class: 'stack', novalidate: true },
      h('div', { class: 'form-grid' }, field('Scope', kind), field('Site or model', value, 'For a model, its name as the agent reports it.')),
      h('fieldset', { class: 'checks' }, h('legend', null, 'Rules switched on'), ...boxes),
      h('div', { class: 'form-grid' }, wide(field('Parameters', params, 'One per line, RULE.FIELD = value (e.g. 2.run = 9).')), field('Resolve after (points without a flag)', resolve)),
      errors, h('div', { class: 'actions' }, submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const problems: string[] = [];
      const scopeValue = kind.value === 'global' ? 'global' : value.value.trim();
      if (kind.value !== 'global' && !scopeValue) problems.push(`Site or model: enter the ${kind.value} this configuration applies to.`);
      const paramObj: Record<string, unknown> = {};
      params.value.split('\n').map((l) => l.trim()).filter(Boolean).forEach((line, i) => {
        const m = /^([A-Za-z0-9_.]+)\s*[=:]\s*(.+)$/.exec(line);
        if (!m) {
          problems.push(`Parameters line ${i + 1}: expected RULE.FIELD = value, got “${line}”.`);
          return;
        }
        const raw = m[2]!.trim();
        paramObj[m[1]!] = raw === 'true' ? true : raw === 'false' ? false : Number.isFinite(Number(raw)) ? Number(raw) : raw;
      });
      const rules = boxes.map((b) => b.querySelector('input')!).filter((i) => i.checked).map((i) => Number(i.value));
      const settings: RuleSettings = { rules, params: paramObj };
      if (resolve.value.trim()) {
        const n = Number(resolve.value);
        if (!Number.isInteger(n) || n < 1) problems.push('Resolve after: a whole number of points, 1 or more.');
        else settings.resolve_after = n;
      }
      if (problems.length) return mount(errors, h('div', { class: 'notice notice-error', role: 'alert', testid: 'rules-validation' }, h('ul', null, ...problems.map((p) => h('li', null, p)))));
      const ok = await withButton(submit, errors, () => mutate('PUT', `rules/${encodeURIComponent(kind.value)}/${encodeURIComponent(scopeValue)}`, settings));
      if (ok !== undefined) {
        mount(msg, notice('ok', `Saved the ${kind.value} configuration${kind.value === 'global' ? '' : ` for ${scopeValue}`}.`, 'rules-saved'));
        void load();
      }
    });
    mount(formSlot, form);
  };

  const load = async () => {
    try {
      const r = await get<{ defaults: RuleSettings; configs: RuleConfig[] }>('rules', undefined, ctx.signal);
      defaults = r.defaults ?? {};
      const rows = r.configs.map((c) => h('tr', { testid: 'rules-row' },
        h('td', null, c.scope_kind), h('td', { class: 'mono' }, c.scope_value ?? '—'), h('td', null, describe({ ...(c.settings as RuleSettings), marker_arl0: c.marker_arl0 })),
        h('td', null, c.updated_by ?? '—', ' ', c.updated_at ? timeEl(c.updated_at) : null),
        h('td', { class: 'row-actions' }, !can('editor') ? null : h('button', { class: 'btn btn-small', type: 'button', testid: 'rules-edit', on: { click: () => { renderForm(c); formSlot.scrollIntoView({ behavior: 'smooth' }); } } }, 'Edit'))));
      mount(listSlot,
        h('div', { class: 'defaults', testid: 'rules-defaults' }, h('strong', null, 'Defaults: '), describe(defaults)),
        rows.length ? table('rules-table', ['Scope', 'Applies to', 'Settings', 'Updated', ''], rows) : emptyState('No overrides — the defaults apply everywhere.', 'Use the form below to switch a rule off or change its parameters for a site or a model.', 'rules-empty'));
      if (!formSlot.firstChild) renderForm();
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(listSlot, e);
    }
  };
  await load();
}

// ---------------------------------------------------------------- tokens

async function tokensTab(panel: HTMLElement, ctx: PageCtx): Promise<void> {
  const listSlot = h('div', null, loading());
  const msg = h('div');
  const shown = h('div', { testid: 'token-shown-slot' });
  const sites = await get<SiteInfo[]>('sites', undefined, ctx.signal).catch(() => [] as SiteInfo[]);
  const siteIn = h('input', { type: 'text', testid: 'token-site', list: 'token-sites', value: ctx.site, placeholder: 'site name' });
  const dl = h('datalist', { id: 'token-sites' }, ...sites.map((s) => h('option', { value: s.name })));
  const name = h('input', { type: 'text', testid: 'token-name', placeholder: 'e.g. gpu-rack-3' });
  const admin = h('input', { type: 'checkbox', testid: 'token-admin' });
  const errors = h('div');
  const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'token-create' }, 'Create token');
  const form = h('form', { class: 'stack', novalidate: true },
    h('div', { class: 'form-grid' }, field('Site', siteIn, 'An ingest token can write only its site.'), dl, field('Name', name)),
    h('label', { class: 'check' }, admin, 'Admin token (for the API and this dashboard, not for agents)'),
    errors, h('div', { class: 'actions' }, submit), shown);
  admin.addEventListener('change', () => (siteIn.disabled = admin.checked));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!admin.checked && !siteIn.value.trim()) return mount(errors, notice('error', 'Site: an ingest token belongs to one site — enter its name.', 'token-validation'));
    const body: Record<string, unknown> = admin.checked ? { admin: true } : { site: siteIn.value.trim() };
    if (name.value.trim()) body.name = name.value.trim();
    const created = await withButton(submit, errors, () => mutate<{ id: string | number; token: string }>('POST', 'tokens', body));
    if (created) {
      mount(shown, h('div', { class: 'secret-box' }, notice('warn', 'Copy this token now — it is shown only once.'), codeBlock(created.token, 'token-secret')));
      shown.scrollIntoView({ block: 'nearest' });
      void load();
    }
  });
  panel.append(card('Tokens', h('p', { class: 'muted small' }, 'Agents authenticate with an ingest token for their site. Secrets are stored hashed and never shown again.'), msg, listSlot), card('Create a token', form));
  const load = async () => {
    try {
      const tokens = await get<Token[]>('tokens', undefined, ctx.signal);
      if (!tokens.length) {
        mount(listSlot, emptyState('No tokens yet.', 'Create an ingest token below, then start an agent with it (see Setup).', 'tokens-empty'));
        return;
      }
      mount(listSlot, table('tokens-table', ['ID', 'Name', 'Site', 'Role', 'Created', 'Revoked', ''], tokens.map((t) =>
        h('tr', { testid: 'token-row', dataset: { id: String(t.id) } },
          h('td', { class: 'mono' }, String(t.id)), h('td', null, t.name ?? '—'), h('td', null, t.site ?? '—'), h('td', null, t.role),
          h('td', null, timeEl(t.created_at)), h('td', null, t.revoked_at ? timeEl(t.revoked_at) : h('span', { class: 'muted' }, 'active')),
          h('td', { class: 'row-actions' }, t.revoked_at ? null : confirmBtn('Revoke', 'token-revoke', `Revoke token ${t.name ?? t.id}? Agents using it are refused at once.`, async (b) => {
            await withButton(b, msg, () => mutate('DELETE', `tokens/${encodeURIComponent(String(t.id))}`));
            void load();
          }))))));
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(listSlot, e);
    }
  };
  await load();
}

// ---------------------------------------------------------------- baselines

async function baselinesTab(panel: HTMLElement, ctx: PageCtx): Promise<void> {
  const listSlot = h('div', null, loading());
  const msg = h('div');
  const site = h('input', { type: 'text', testid: 'rebaseline-site', value: ctx.site, placeholder: 'required' });
  const host = h('input', { type: 'text', testid: 'rebaseline-host', placeholder: 'all hosts' });
  const model = h('input', { type: 'text', testid: 'rebaseline-model', placeholder: 'all models' });
  const metric = h('select', { testid: 'rebaseline-metric' }, h('option', { value: '' }, 'all metrics'), ...METRICS.map(([k, l]) => h('option', { value: k }, l)));
  const from = h('input', { type: 'datetime-local', testid: 'rebaseline-from', value: toLocalInput(Date.now() - 3600_000) });
  const to = h('input', { type: 'datetime-local', testid: 'rebaseline-to', value: toLocalInput(Date.now()) });
  const reason = h('input', { type: 'text', testid: 'rebaseline-reason', placeholder: 'e.g. upgraded to vLLM 0.6' });
  const errors = h('div');
  const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'rebaseline-submit' }, 'Re-baseline');
  const form = h('form', { class: 'stack', novalidate: true },
    h('p', { class: 'muted small' }, 'Estimate new centre lines and limits from a period you know was normal — e.g. the hour after a deployment. Past violations keep their frozen baseline.'),
    h('div', { class: 'form-grid' }, field('Site', site), field('Host', host), field('Model', model), field('Metric', metric)),
    h('div', { class: 'form-grid' }, field('From', from), field('To', to), field('Reason', reason)),
    errors, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const problems: string[] = [];
    const f = fromLocalInput(from.value);
    const t = fromLocalInput(to.value);
    if (!site.value.trim()) problems.push('Site: enter the site to re-baseline.');
    if (f === null || t === null) problems.push('From / To: pick the normal period.');
    else if (t <= f) problems.push('To: must be after From.');
    else if (t > Date.now() + 60_000) problems.push('To: cannot be in the future.');
    if (!reason.value.trim()) problems.push('Reason: say why (it is kept with the baseline).');
    if (problems.length) return mount(errors, h('div', { class: 'notice notice-error', role: 'alert', testid: 'rebaseline-validation' }, h('ul', null, ...problems.map((p) => h('li', null, p)))));
    const body: Record<string, unknown> = { site: site.value.trim(), from: f, to: t, reason: reason.value.trim() };
    if (host.value.trim()) body.host = host.value.trim();
    if (model.value.trim()) body.model = model.value.trim();
    if (metric.value) body.metric = metric.value;
    const r = await withButton(submit, errors, () => mutate<{ created: number }>('POST', 'baselines/rebaseline', body));
    if (r) {
      mount(msg, notice(r.created ? 'ok' : 'warn', r.created ? `Created ${r.created} new baseline${r.created === 1 ? '' : 's'}.` : 'No series had enough points in that range — pick a longer period.', 'rebaseline-result'));
      void load();
    }
  });
  panel.append(card('Current baselines', msg, listSlot), can('editor') ? card('Re-baseline from a range', form) : needs('editor', 'Re-baselining'));
  const load = async () => {
    try {
      const rows = (await get<BaselineRow[]>('baselines', undefined, ctx.signal)).filter((b) => !ctx.site || !b.site || b.site === ctx.site);
      if (!rows.length) {
        mount(listSlot, emptyState('No baselines yet.', 'Each series estimates one from its first successful points; they appear here once frozen.', 'baselines-empty'));
        return;
      }
      mount(listSlot, table('baselines-table', ['Scope', 'Series', 'Centre', 'σ', 'k', 'Method', 'Points', 'Window', 'Mode', 'Reason', 'Since'], rows.map((b) =>
        h('tr', { testid: 'baseline-row' },
          h('td', null, b.scope),
          h('td', null, [b.site, b.host, b.provider && b.model ? `${b.provider}/${b.model}` : b.model].filter(Boolean).join(' · ') || '—', b.metric ? h('div', { class: 'muted small' }, metricLabel(b.metric)) : null),
          h('td', { class: 'num' }, fmtNum(b.transform === 'log' ? Math.exp(b.center) : b.center)), h('td', { class: 'num' }, fmtNum(b.sigma)), h('td', { class: 'num' }, fmtNum(b.k)),
          h('td', null, `${b.method}${b.transform && b.transform !== 'none' ? ` · ${b.transform}` : ''}`), h('td', { class: 'num' }, String(b.points)),
          h('td', null, b.window_from ? timeEl(b.window_from) : '—', b.window_to ? [' → ', timeEl(b.window_to)] : null),
          h('td', null, b.mode), h('td', null, b.reason ?? '—', b.created_by ? h('div', { class: 'muted small' }, b.created_by) : null), h('td', null, timeEl(b.valid_from))))));
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(listSlot, e);
    }
  };
  await load();
}
