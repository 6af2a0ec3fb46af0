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
