// Planning: SLOs (attainment, error budget left, burn rates, the burn alert), cost (per day,
// site and model, the month's forecast, prices and budgets) and capacity headroom. Admins
// add and remove SLOs, prices and budgets here; definitions from the configuration file are
// shown read-only. Every table has its CSV.
import { can, get, mutate, url } from '../api';
import { emptyState, h, mount, notice, type Child } from '../dom';
import { fmtNum, utcText } from '../format';
import { updateParams } from '../router';
import type { PageCtx } from '../page';
import { loading, pageHead, showError } from '../ui';

interface Slo {
  id: string; name: string; site: string; model: string; source: string; metric: string; threshold: number | null;
  objective: number; window_days: number; origin: string; describe: string; total: number; bad: number;
  attainment: number | null; error_budget_remaining: number | null; burn_rate: Record<string, number | null>;
  alert: { id: string; rule: string } | null;
}
interface CostLine {
  period: number; site: string; provider: string; model: string; calls: number; tokens_in: number; tokens_out: number;
  host_hours: number; cost: number | null; cost_per_call: number | null; cost_per_1k_tokens: number | null;
}
interface Forecast { site?: string; provider?: string; model?: string; spent: number; daily_rate_7d: number; forecast: number; days_left: number }
interface CostResp { lines: CostLine[]; total: number; forecast: Forecast; forecasts: Forecast[]; missing_prices: string[] }
interface Price { provider: string; model: string; input_per_m: number; output_per_m: number; gpu_hour: number; gpus: number; origin: string }
interface Budget { id: string; name: string; site: string; model: string; monthly: number; origin: string; spent: number; forecast: number; over: boolean; alert: { id: string } | null }
interface HostCap {
  site: string; host: string; provider: string; model: string; hours: number; peak_tokens_per_s: number; slo_ttft_ms: number | null;
  headroom_pct: number | null; limited_by: string; gpu_util_at_peak: number | null; summary: string;
}
interface CapResp { hosts: HostCap[]; sites: Array<{ site: string; model: string; headroom_pct: number | null; peak_tokens_per_s: number; summary: string }>; assumptions: string[] }

const TABS: Array<[string, string]> = [['slos', 'SLOs'], ['cost', 'Cost'], ['capacity', 'Capacity']];

function table(testid: string, headers: string[], rows: HTMLElement[]): HTMLElement {
  return h('div', { class: 'table-scroll' }, h('table', { class: 'table', testid },
    h('thead', null, h('tr', null, ...headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, ...rows)));
}

const pct = (v: number | null | undefined, d = 2) => (v === null || v === undefined ? '—' : `${(v * 100).toFixed(d)} %`);
const money = (v: number | null | undefined) => (v === null || v === undefined ? '—' : v >= 100 ? v.toFixed(0) : v.toFixed(v >= 1 ? 2 : 4));
const csvLink = (path: string, params: Record<string, string | undefined>, testid: string) =>
  h('a', { class: 'btn', href: url(path, { ...params, format: 'csv' }), download: '', testid }, 'CSV');
const scope = (site: string, model: string) => `${site || 'all sites'} · ${model || 'all models'}`;

function input(name: string, attrs: Record<string, string> = {}): HTMLInputElement {
  return h('input', { name, 'aria-label': name, ...attrs }) as HTMLInputElement;
}

/** A small form whose fields become a JSON body; numbers are parsed, empty fields dropped. */
function jsonForm(testid: string, fields: HTMLElement[], submit: string, send: (body: Record<string, unknown>) => Promise<unknown>, msg: HTMLElement, done: () => void): HTMLFormElement {
  const form = h('form', { class: 'form-row', testid }, ...fields, h('button', { class: 'btn btn-primary', type: 'submit' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body: Record<string, unknown> = {};
    for (const el of Array.from(form.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select'))) {
      if (el.value === '') continue;
      body[el.name] = el.dataset.num ? Number(el.value) : el.value;
    }
    try {
      await send(body);
      mount(msg, notice('ok', 'Saved.', `${testid}-ok`));
      done();
    } catch (e) {
      showError(msg, e, `${testid}-error`);
    }
  });
  return form;
}

function removeBtn(testid: string, action: () => Promise<unknown>, msg: HTMLElement, done: () => void): HTMLButtonElement {
  const b = h('button', { class: 'btn btn-small', type: 'button', testid }, 'Remove') as HTMLButtonElement;
  b.addEventListener('click', async () => {
    try {
      await action();
      done();
    } catch (e) {
      showError(msg, e);
    }
  });
  return b;
}

export async function planningPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const tab = TABS.some(([k]) => k === ctx.params.get('tab')) ? ctx.params.get('tab')! : 'slos';
  const tabs = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Planning' },
    ...TABS.map(([k, l]) => h('button', { type: 'button', role: 'tab', class: k === tab ? 'active' : '', 'aria-selected': String(k === tab), testid: `plan-tab-${k}`, on: { click: () => updateParams({ tab: k }) } }, l)));
  const panel = h('div', { class: 'tab-panel', testid: `plan-panel-${tab}` });
  view.append(pageHead('Planning', 'SLOs and their error budgets, cost per token and the month\'s forecast, capacity headroom.'), tabs, panel);
  const render = () => {
    mount(panel, loading());
    const run = tab === 'slos' ? slos : tab === 'cost' ? cost : capacity;
    run(panel, ctx, render).catch((e) => {
      if ((e as Error).name !== 'AbortError') showError(panel, e);
    });
  };
  render();
}

async function slos(panel: HTMLElement, ctx: PageCtx, again: () => void): Promise<void> {
  const r = await get<{ slos: Slo[] }>('slos', undefined, ctx.signal);
  const msg = h('div');
  const admin = can('admin');
  const rows = r.slos.map((s) => h('tr', { testid: 'slo-row', dataset: { name: s.name } },
    h('td', null, h('strong', null, s.name), h('div', { class: 'small muted' }, s.describe)),
    h('td', null, scope(s.site, s.model)),
    h('td', { class: 'num', testid: 'slo-attainment' }, pct(s.attainment, 3)),
    h('td', { class: 'num' }, `${s.total.toLocaleString()} / ${s.bad.toLocaleString()} bad`),
    h('td', { class: `num ${s.error_budget_remaining !== null && s.error_budget_remaining < 0 ? 'bad' : ''}`, testid: 'slo-budget' }, pct(s.error_budget_remaining, 1)),
    h('td', { class: 'num' }, ['5m', '1h', '6h'].map((w) => `${w} ${s.burn_rate[w] === null || s.burn_rate[w] === undefined ? '—' : fmtNum(s.burn_rate[w]!)}`).join(' · ')),
    h('td', { testid: 'slo-alert' }, s.alert ? h('a', { href: `/violations/${s.alert.id}`, class: 'badge badge-violation' }, `${s.alert.rule} burn`) : h('span', { class: 'muted' }, 'ok')),
    h('td', null, s.origin === 'config' ? h('span', { class: 'small muted' }, 'config file') : admin ? removeBtn('slo-remove', () => mutate('DELETE', `slos/${s.id}`), msg, again) : null)));
  const form = admin
    ? jsonForm('slo-form', [
        input('name', { placeholder: 'name', required: 'true' }),
        input('site', { placeholder: 'site (all)' }),
        input('model', { placeholder: 'model (all)' }),
        h('select', { name: 'metric', 'aria-label': 'metric' }, ...['ttft_ms', 'latency_ms', 'tpot_ms', 'errors'].map((m) => h('option', { value: m }, m))),
        input('threshold', { type: 'number', step: 'any', placeholder: 'threshold ms', 'data-num': '1' }),
        input('objective', { type: 'number', step: 'any', placeholder: 'objective e.g. 0.99', required: 'true', 'data-num': '1' }),
        input('window_days', { type: 'number', placeholder: 'days (30)', 'data-num': '1' }),
      ], 'Add SLO', (b) => mutate('POST', 'slos', b), msg, again)
    : h('p', { class: 'small muted' }, 'Adding SLOs needs the admin role.');
  mount(panel,
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'Service level objectives'), csvLink('slos', {}, 'slos-csv')),
      r.slos.length
        ? table('slos-table', ['SLO', 'Scope', 'Attainment', 'Calls', 'Error budget left', 'Burn rate', 'Alert', ''], rows)
        : emptyState('No SLOs yet.', 'For example TTFT p95 ≤ 800 ms: metric ttft_ms, threshold 800, objective 0.95.', 'slos-empty'),
      h('p', { class: 'small muted' }, 'Burn rate = bad fraction ÷ error budget. A fast-burn alert fires at 14.4× over 1 h and 5 min, a slow one at 6× over 6 h and 30 min; they are routed like every other alert.'),
      form, msg));
}

async function cost(panel: HTMLElement, ctx: PageCtx, again: () => void): Promise<void> {
  const site = ctx.site ?? undefined;
  const [c, p, b] = await Promise.all([
    get<CostResp>('cost', { site }, ctx.signal),
    get<{ prices: Price[] }>('prices', undefined, ctx.signal),
    get<{ budgets: Budget[] }>('budgets', undefined, ctx.signal),
  ]);
  const msg = h('div');
  const admin = can('admin');
  const days = new Map<string, CostLine[]>();
  for (const l of c.lines) {
    const k = `${l.site}|${l.provider}|${l.model}`;
    days.set(k, [...(days.get(k) ?? []), l]);
  }
  const lineRows = [...c.lines].reverse().slice(0, 200).map((l) => h('tr', { testid: 'cost-row' },
    h('td', null, utcText(l.period).slice(0, 10)), h('td', null, l.site), h('td', null, `${l.provider}/${l.model}`),
    h('td', { class: 'num' }, l.calls.toLocaleString()), h('td', { class: 'num' }, `${l.tokens_in.toLocaleString()} / ${l.tokens_out.toLocaleString()}`),
    h('td', { class: 'num' }, l.host_hours.toLocaleString()), h('td', { class: 'num', testid: 'cost-value' }, money(l.cost)),
    h('td', { class: 'num' }, money(l.cost_per_call)), h('td', { class: 'num' }, money(l.cost_per_1k_tokens))));
  const fcRows = c.forecasts.map((f) => h('tr', { testid: 'forecast-row' },
    h('td', null, f.site ?? ''), h('td', null, `${f.provider}/${f.model}`), h('td', { class: 'num' }, money(f.spent)),
    h('td', { class: 'num' }, money(f.daily_rate_7d)), h('td', { class: 'num' }, money(f.forecast))));
  const priceRows = p.prices.map((x) => h('tr', { testid: 'price-row' },
    h('td', null, `${x.provider}/${x.model}`), h('td', { class: 'num' }, String(x.input_per_m)), h('td', { class: 'num' }, String(x.output_per_m)),
    h('td', { class: 'num' }, x.gpus ? `${x.gpu_hour} × ${x.gpus} GPUs` : '—'),
    h('td', null, x.origin === 'config' ? h('span', { class: 'small muted' }, 'config file') : admin ? removeBtn('price-remove', () => mutate('DELETE', `prices/${encodeURIComponent(x.provider)}/${encodeURIComponent(x.model)}`), msg, again) : null)));
  const budgetRows = b.budgets.map((x) => h('tr', { testid: 'budget-row' },
    h('td', null, x.name), h('td', null, scope(x.site, x.model)), h('td', { class: 'num' }, money(x.monthly)),
    h('td', { class: 'num' }, money(x.spent)), h('td', { class: `num ${x.over ? 'bad' : ''}`, testid: 'budget-forecast' }, money(x.forecast)),
    h('td', null, x.alert ? h('a', { href: `/violations/${x.alert.id}`, class: 'badge badge-violation' }, 'over budget') : h('span', { class: 'muted' }, 'ok')),
    h('td', null, x.origin === 'config' ? h('span', { class: 'small muted' }, 'config file') : admin ? removeBtn('budget-remove', () => mutate('DELETE', `budgets/${x.id}`), msg, again) : null)));
  const adminForms: Child = admin
    ? [
        h('h3', null, 'Set a price'),
        jsonForm('price-form', [
          input('provider', { placeholder: 'provider', required: 'true' }), input('model', { placeholder: 'model', required: 'true' }),
          input('input_per_m', { type: 'number', step: 'any', placeholder: 'input / M tokens', 'data-num': '1' }),
          input('output_per_m', { type: 'number', step: 'any', placeholder: 'output / M tokens', 'data-num': '1' }),
          input('gpu_hour', { type: 'number', step: 'any', placeholder: 'GPU-hour price', 'data-num': '1' }),
          input('gpus', { type: 'number', placeholder: 'GPUs per host', 'data-num': '1' }),
        ], 'Set price', (body) => mutate('PUT', 'prices', body), msg, again),
        h('h3', null, 'Add a monthly budget'),
        jsonForm('budget-form', [
          input('name', { placeholder: 'name', required: 'true' }), input('site', { placeholder: 'site (all)' }), input('model', { placeholder: 'model (all)' }),
          input('monthly', { type: 'number', step: 'any', placeholder: 'amount per month', required: 'true', 'data-num': '1' }),
        ], 'Add budget', (body) => mutate('POST', 'budgets', body), msg, again),
      ]
    : h('p', { class: 'small muted' }, 'Changing prices and budgets needs the admin role.');
  mount(panel,
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'This month'), csvLink('cost', { site }, 'cost-csv')),
      h('p', { testid: 'cost-forecast' }, `Spent ${money(c.forecast.spent)} so far; at the last 7 days' rate (${money(c.forecast.daily_rate_7d)} a day) the month ends near `, h('strong', null, money(c.forecast.forecast)), '.'),
      c.missing_prices.length ? notice('warn', `No price for ${c.missing_prices.join(', ')}: their cost is not counted. Set one below or in [[price]].`, 'missing-prices') : null,
      fcRows.length ? table('forecast-table', ['Site', 'Model', 'Spent', 'Per day (7 d)', 'Month forecast'], fcRows) : null),
    h('section', { class: 'card' },
      h('h2', { class: 'card-title' }, 'Cost per day'),
      lineRows.length ? table('cost-table', ['Day (UTC)', 'Site', 'Model', 'Calls', 'Tokens in / out', 'Host-hours', 'Cost', 'Per call', 'Per 1k tokens'], lineRows)
        : emptyState('No usage yet.', 'Calls and tokens are rolled up per hour as samples arrive.', 'cost-empty')),
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'Prices'), csvLink('prices', {}, 'prices-csv')),
      priceRows.length ? table('prices-table', ['Model', 'Input / M', 'Output / M', 'GPU', ''], priceRows) : emptyState('No prices.', 'Costs need a price per provider and model.', 'prices-empty'),
      h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'Budgets'), csvLink('budgets', {}, 'budgets-csv')),
      budgetRows.length ? table('budgets-table', ['Budget', 'Scope', 'Monthly', 'Spent', 'Forecast', 'Alert', ''], budgetRows) : emptyState('No budgets.', 'A budget alert opens when the month\'s forecast exceeds it.', 'budgets-empty'),
      adminForms, msg));
}

async function capacity(panel: HTMLElement, ctx: PageCtx): Promise<void> {
  const site = ctx.site ?? undefined;
  const r = await get<CapResp>('capacity', { site }, ctx.signal);
  const head = (v: number | null) => (v === null ? '—' : `${v >= 0 ? '+' : ''}${v.toFixed(0)} %`);
  const siteRows = r.sites.map((s) => h('tr', { testid: 'capacity-site' },
    h('td', null, s.site), h('td', null, s.model), h('td', { class: 'num' }, fmtNum(s.peak_tokens_per_s)), h('td', { class: 'num' }, head(s.headroom_pct)), h('td', { class: 'wrap' }, s.summary)));
  const hostRows = r.hosts.map((x) => h('tr', { testid: 'capacity-host' },
    h('td', null, `${x.site} · ${x.host}`), h('td', null, `${x.provider}/${x.model}`), h('td', { class: 'num' }, String(x.hours)),
    h('td', { class: 'num' }, fmtNum(x.peak_tokens_per_s)), h('td', { class: 'num' }, x.gpu_util_at_peak === null ? '—' : `${x.gpu_util_at_peak.toFixed(0)} %`),
    h('td', { class: 'num' }, x.slo_ttft_ms === null ? '—' : `${x.slo_ttft_ms} ms`), h('td', { class: 'num' }, head(x.headroom_pct)), h('td', { class: 'wrap' }, x.summary)));
  mount(panel,
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'Headroom per site'), csvLink('capacity', { site }, 'capacity-csv')),
      siteRows.length ? table('capacity-sites', ['Site', 'Model', 'Peak tokens/s', 'Headroom', ''], siteRows) : emptyState('No usage yet.', 'Headroom needs a few hours of traffic with tokens and probe TTFT.', 'capacity-empty'),
      hostRows.length ? table('capacity-hosts', ['Host', 'Model', 'Hours', 'Peak tokens/s', 'GPU at peak', 'TTFT SLO', 'Headroom', ''], hostRows) : null,
      h('h3', null, 'Assumptions'),
      h('ul', { class: 'small muted' }, ...r.assumptions.map((a) => h('li', null, a)))));
}
