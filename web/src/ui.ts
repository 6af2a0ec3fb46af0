import { h, notice, type Child } from './dom';
import { errorText } from './api';
import { rule } from './rules';

export function pageHead(title: string, subtitle: Child, ...actions: Child[]): HTMLElement {
  return h('div', { class: 'page-head' },
    h('div', null, h('h1', null, title), subtitle ? h('p', { class: 'subtitle' }, subtitle) : null),
    actions.length ? h('div', { class: 'page-actions' }, ...actions) : null);
}

const STATUS_LABEL: Record<string, string> = {
  in_control: 'in control',
  violation: 'violation',
  learning: 'learning',
  open: 'open',
  acknowledged: 'acknowledged',
  resolved: 'resolved',
  active: 'active',
  expired: 'expired',
  pending: 'pending',
};

export function statusBadge(status: string, testid?: string): HTMLElement {
  return h('span', { class: `badge badge-${status}`, testid, dataset: { status } }, STATUS_LABEL[status] ?? status);
}

export function ruleChip(n: number, name?: string): HTMLElement {
  const info = rule(n);
  return h('span', { class: 'rule-tag', title: info.text },
    h('span', { class: 'swatch swatch-dot', style: { background: info.color } }), `${n} · ${name ?? info.name}`);
}

/** What a detector is, in a few words (paging detectors; Nelson rules have `rules.ts`). */
export const DETECTORS: Record<string, { name: string; color: string; text: string }> = {
  cusum: { name: 'sustained shift (CUSUM)', color: '#b91c1c', text: 'The CUSUM of the standardised (log) values crossed its decision limit, designed for one false page per 100 000 probes per model-host: the level has changed.' },
  down: { name: 'model down', color: '#7f1d1d', text: 'Consecutive calls failed (3 by default).' },
  error_rate: { name: 'error rate up', color: '#c2410c', text: 'A Bernoulli CUSUM of the failure rate crossed its limit (designed to catch 1 % → 10 %).' },
  silent: { name: 'model silent', color: '#6b21a8', text: 'No call for 5× the model\'s median interval (at least 2 minutes).' },
  agent_silent: { name: 'agent silent', color: '#581c87', text: 'No telemetry from the agent for 2 minutes.' },
  slo_burn: { name: 'SLO budget burning', color: '#be123c', text: 'The SLO\'s error budget burns too fast: 14.4× over 1 h and 5 min (fast) or 6× over 6 h and 30 min (slow).' },
  budget: { name: 'over budget', color: '#a16207', text: 'The month\'s cost forecast exceeds its budget.' },
};

/** A finding: the rule chip of a Nelson marker, or the detector's chip. */
export function findingChip(v: { detector?: string; rule: number; rule_name?: string }): HTMLElement {
  const d = v.detector && v.detector !== 'nelson' ? DETECTORS[v.detector] : undefined;
  if (!d) return ruleChip(v.rule, v.rule_name);
  return h('span', { class: 'rule-tag', title: d.text, dataset: { detector: v.detector } },
    h('span', { class: 'swatch swatch-dot', style: { background: d.color } }), d.name);
}

/** A severity: pages (critical, error) stand out; markers (warning, info) do not. */
export function severityBadge(sev: string | undefined, testid?: string): HTMLElement {
  const s = sev ?? 'info';
  const page = s === 'critical' || s === 'error';
  return h('span', { class: `badge badge-sev-${s}`, testid, dataset: { severity: s }, title: page ? 'a page: notifies' : 'a chart marker: shown, not paged' }, page ? `${s} · page` : s);
}

/** Shows an API error (its JSON `error` text) in a slot. */
export function showError(slot: HTMLElement, e: unknown, testid = 'error'): void {
  slot.replaceChildren(notice('error', errorText(e), testid));
}

export function loading(text = 'Loading…'): HTMLElement {
  return h('div', { class: 'loading', testid: 'loading' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), text);
}

export function card(title: Child, ...body: Child[]): HTMLElement {
  return h('section', { class: 'card' }, title ? h('h2', { class: 'card-title' }, title) : null, ...body);
}

/** Runs an async action from a button: disables it meanwhile, shows errors in `slot`. */
export async function withButton<T>(btn: HTMLButtonElement, slot: HTMLElement | null, fn: () => Promise<T>): Promise<T | undefined> {
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  slot?.replaceChildren();
  try {
    return await fn();
  } catch (e) {
    if (slot) showError(slot, e);
    return undefined;
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
  }
}
