import { get, type Overview, type OverviewCell } from '../api';
import { sparkline } from '../spark';
import { debounce, emptyState, h, mount } from '../dom';
import { subscribe, throttle } from '../events';
import { href, link, replaceParams } from '../router';
import type { PageCtx } from '../page';
import { loading, pageHead, showError, statusBadge } from '../ui';

function cellLink(c: OverviewCell): HTMLElement {
  const title = `${c.site} · ${c.provider}/${c.model}`;
  const hint =
    c.status === 'violation'
      ? `${c.open_violations} open violation${c.open_violations === 1 ? '' : 's'}`
      : c.status === 'learning'
        ? 'learning the baseline'
        : 'in control';
  return link(
    href('/series', { site: c.site, provider: c.provider, model: c.model }),
    { class: `cell cell-${c.status}`, testid: 'overview-cell', title: `${title}: ${hint}`, dataset: { site: c.site, model: c.model, provider: c.provider, status: c.status } },
    h('div', { class: 'cell-top' }, statusBadge(c.status),
      c.open_violations > 0 ? h('span', { class: 'cell-count', testid: 'cell-open' }, `${c.open_violations} open`) : h('span', { class: 'muted small' }, `${c.series} series`)),
    sparkline(c.spark ?? [], c.status, 140, 30),
  );
}

export async function overviewPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const filter = h('input', { type: 'search', placeholder: 'Filter models or sites…', testid: 'overview-filter', 'aria-label': 'Filter', value: ctx.params.get('q') ?? '' });
  const summary = h('div', { class: 'summary', testid: 'overview-summary' });
  const body = h('div', { class: 'card overview-card' }, loading());
  view.append(pageHead('Overview', 'Each cell is one model at one site: is its latency in statistical control?', filter), summary, body);

  let data: Overview | null = null;

  const draw = () => {
    if (!data) return;
    const q = filter.value.trim().toLowerCase();
    const cells = data.cells.filter((c) => !q || `${c.site} ${c.provider}/${c.model}`.toLowerCase().includes(q));
    const open = data.cells.reduce((a, c) => a + c.open_violations, 0);
    const violating = data.cells.filter((c) => c.status === 'violation').length;
    mount(summary,
      stat('Sites', String(data.sites.length), 'stat-sites'),
      stat('Models', String(data.models.length), 'stat-models'),
      stat('Out of control', String(violating), 'stat-violating', violating > 0 ? 'bad' : 'good'),
      stat('Open violations', String(open), 'stat-open', open > 0 ? 'bad' : 'good', link(href('/violations', { status: 'open' }), { testid: 'overview-open-link' }, 'View')),
    );
    if (data.cells.length === 0) {
      mount(body, emptyState('No data yet — install an agent.', ['Follow the ', link(href('/setup'), { testid: 'empty-setup-link' }, 'Setup'), ' steps to create an ingest token and start an agent on an inference host. Its first points show up here within seconds.'], 'overview-empty'));
      return;
    }
    if (cells.length === 0) {
      mount(body, emptyState('Nothing matches this filter.', 'Clear the filter box to see every model.', 'overview-nomatch'));
      return;
    }
    const sites = data.sites.filter((s) => cells.some((c) => c.site === s));
    const models: Array<[string, string]> = [];
    for (const c of cells) if (!models.some(([p, m]) => p === c.provider && m === c.model)) models.push([c.provider, c.model]);
    models.sort((a, b) => `${a[0]}/${a[1]}`.localeCompare(`${b[0]}/${b[1]}`));
    const table = h('table', { class: 'grid', testid: 'overview-grid' },
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Model'), ...sites.map((s) => h('th', { scope: 'col', testid: 'grid-site' }, link(href('/', { site: s }), null, s))))),
      h('tbody', null, ...models.map(([p, m]) =>
        h('tr', null,
          h('th', { scope: 'row', class: 'model-name' }, h('span', { class: 'provider' }, p), h('span', { class: 'model', testid: 'grid-model' }, m)),
          ...sites.map((s) => {
            const c = cells.find((x) => x.site === s && x.provider === p && x.model === m);
            return h('td', null, c ? cellLink(c) : h('span', { class: 'muted small' }, '—'));
          }),
        ))),
    );
    mount(body, h('div', { class: 'table-scroll' }, table));
  };

  filter.addEventListener('input', debounce(() => {
    replaceParams({ q: filter.value.trim() || null });
    draw();
  }, 120));

  const load = async () => {
    try {
      data = await get<Overview>('overview', { site: ctx.site }, ctx.signal);
      draw();
    } catch (e) {
      if ((e as Error).name === 'AbortError') return;
      showError(body, e);
    }
  };
  await load();

  const t = throttle(() => void load(), 10_000);
  ctx.onCleanup(t.cancel);
  ctx.onCleanup(subscribe({ violation: () => t.call(), points: () => t.call() }));
}

function stat(label: string, value: string, testid: string, tone?: 'good' | 'bad', extra?: HTMLElement): HTMLElement {
  return h('div', { class: `stat${tone ? ` stat-${tone}` : ''}`, testid },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value' }, value, extra ? h('span', { class: 'stat-extra' }, extra) : null));
}
