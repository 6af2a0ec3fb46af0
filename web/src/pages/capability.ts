// Capability: how well one series meets an SLO limit — Cp, Cpk, Pp, Ppk with their 95 %
// intervals and the percentile Ppk, computed on ln(values) (latency is right-skewed), with a
// histogram of the values, the fitted curve and the limit.
import { get, type CapabilityResp, type CapIndex, type SeriesInfo } from '../api';
import { emptyState, h, mount } from '../dom';
import { fmtNum, fmtValue, metricLabel, resolveRange, WINDOWS } from '../format';
import { updateParams } from '../router';
import type { PageCtx } from '../page';
import { loading, pageHead, showError } from '../ui';
import { parseKey } from './series';

function label(key: string): string {
  const p = parseKey(key);
  return p ? `${p.site} · ${p.host} · ${p.provider}/${p.model} · ${metricLabel(p.metric)}` : key;
}

export async function capabilityPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const range = resolveRange(ctx.params, '7d');
  const key = ctx.params.get('key') ?? '';
  const usl = ctx.params.get('usl') ?? '';
  const lsl = ctx.params.get('lsl') ?? '';
  const keySel = h('select', { testid: 'cap-key', 'aria-label': 'Series', required: true }, h('option', { value: '' }, 'Choose a series…'));
  const uslIn = h('input', { type: 'number', min: '0', step: 'any', value: usl, placeholder: 'e.g. 800', testid: 'cap-usl', 'aria-label': 'Upper limit (SLO)', required: true });
  const lslIn = h('input', { type: 'number', min: '0', step: 'any', value: lsl, placeholder: 'optional', testid: 'cap-lsl', 'aria-label': 'Lower limit' });
  const form = h('form', { class: 'card picker', testid: 'cap-form' },
    h('div', { class: 'form-row' },
      h('label', null, 'Series ', keySel),
      h('label', null, 'Upper limit (SLO, ms) ', uslIn),
      h('label', null, 'Lower limit ', lslIn),
      h('button', { class: 'btn btn-primary', type: 'submit', testid: 'cap-apply' }, 'Show')));
  const windows = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' },
    ...WINDOWS.map(([k, l]) => h('button', { type: 'button', class: range.window === k ? 'active' : '', 'aria-pressed': String(range.window === k), testid: `window-${k}`, on: { click: () => updateParams({ window: k }) } }, l)));
  const results = h('div');
  view.append(pageHead('Capability', 'How well a series meets its SLO limit: Cpk and Ppk with 95 % intervals, computed on the log scale.', windows), form, results);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    updateParams({ key: keySel.value, usl: uslIn.value, lsl: lslIn.value || null });
  });
  get<SeriesInfo[]>('series', { site: ctx.site }, ctx.signal)
    .then((all) => {
      for (const s of all.filter((x) => x.metric !== 'tokens_per_s')) keySel.append(h('option', { value: s.key, selected: s.key === key }, label(s.key)));
    })
    .catch((e) => {
      if ((e as Error).name !== 'AbortError') showError(results, e);
    });
  if (!key || !usl) {
    mount(results, h('div', { class: 'card' }, emptyState('Choose a series and its SLO limit.', 'For example TTFT with an upper limit of 800 ms: Cpk ≥ 1.33 means the limit sits four sigmas above the mean.', 'cap-empty')));
    return;
  }
  mount(results, h('div', { class: 'card' }, loading()));
  try {
    const params: Record<string, string | number> = { key, usl, from: range.from, to: range.to };
    if (lsl) params.lsl = lsl;
    const c = await get<CapabilityResp>('capability', params, ctx.signal);
    mount(results, h('section', { class: 'card', testid: 'cap-result' },
      h('h2', { class: 'card-title' }, label(c.key)),
      h('div', { class: 'two-col' }, indices(c), histogram(c))));
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showError(results, e);
  }
}

function indices(c: CapabilityResp): HTMLElement {
  const idx = (x: CapIndex | null) => (x ? `${x.estimate.toFixed(2)} (${x.ci[0].toFixed(2)}–${x.ci[1].toFixed(2)})` : '— (needs a lower limit)');
  const row = (k: string, v: string, testid?: string) => h('tr', testid ? { testid } : null, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, v));
  return h('div', null,
    h('table', { class: 'kv', testid: 'cap-table' },
      row('Points', String(c.n)),
      row('Geometric mean', fmtValue(c.metric, c.mean)),
      row('Above the limit', `${fmtNum(c.above_usl * 100)}%`),
      row('Cpk (95 % CI)', idx(c.cpk), 'cap-cpk'),
      row('Ppk (95 % CI)', idx(c.ppk), 'cap-ppk'),
      row('Cp (95 % CI)', idx(c.cp)),
      row('Pp (95 % CI)', idx(c.pp)),
      row('Ppk, percentile method', c.ppk_percentile === null ? '—' : c.ppk_percentile.toFixed(2))),
    h('p', { class: 'small muted' }, 'On ln(values) against ln(limits). Cpk uses the within-process sigma (moving ranges), Ppk the overall one; 1.33 is the usual bar. The percentile Ppk assumes no distribution.'));
}

/** Bars of the counts per bin, the fitted normal (on the log scale) as ticks, the limit as a line. */
function histogram(c: CapabilityResp): HTMLElement {
  const { edges, counts, fitted } = c.histogram;
  const max = Math.max(1, ...counts, ...fitted);
  const lo = Math.log(edges[0]!);
  const hi = Math.log(edges[edges.length - 1]!);
  const at = (v: number) => `${((Math.log(v) - lo) / (hi - lo)) * 100}%`;
  const bars = counts.map((n, i) =>
    h('div', { class: 'hist-bin', title: `${fmtValue(c.metric, edges[i]!)}–${fmtValue(c.metric, edges[i + 1]!)}: ${n}` },
      h('div', { class: 'hist-bar', style: { height: `${(n / max) * 100}%` } }),
      h('div', { class: 'hist-fit', style: { bottom: `${(fitted[i]! / max) * 100}%` } })));
  return h('div', { class: 'hist', testid: 'cap-histogram' },
    h('div', { class: 'hist-bins' }, ...bars,
      h('div', { class: 'hist-limit', style: { left: at(c.usl) }, title: `upper limit ${fmtValue(c.metric, c.usl)}` }),
      c.lsl ? h('div', { class: 'hist-limit', style: { left: at(c.lsl) } }) : null),
    h('div', { class: 'hist-axis small muted' }, h('span', null, fmtValue(c.metric, edges[0]!)), h('span', null, `limit ${fmtValue(c.metric, c.usl)}`), h('span', null, fmtValue(c.metric, edges[edges.length - 1]!))));
}
