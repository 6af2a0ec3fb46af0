import 'uplot/dist/uPlot.min.css';
import './style.css';

import { adminToken, get, setAdminToken, type SiteInfo, type Setup } from './api';
import { h, mount, notice, svg } from './dom';
import { closeAllModals } from './modal';
import { currentSite, href, link, navigate, rememberSite, setNavigateHandler } from './router';
import type { PageCtx, PageFn } from './page';
import { overviewPage } from './pages/overview';
import { notFoundPage } from './pages/notfound';
import { loading } from './ui';

// The overview ships in the first bundle; other pages (and uPlot with them) load on demand.
const ROUTES: Array<{ path: string; label: string; page: () => Promise<PageFn>; nav: boolean }> = [
  { path: '/', label: 'Overview', page: async () => overviewPage, nav: true },
  { path: '/series', label: 'Series', page: () => import('./pages/series').then((m) => m.seriesPage), nav: true },
  { path: '/incidents', label: 'Incidents', page: () => import('./pages/incidents').then((m) => m.incidentsPage), nav: true },
  { path: '/violations', label: 'Violations', page: () => import('./pages/violations').then((m) => m.violationsPage), nav: true },
  { path: '/compare', label: 'Compare', page: () => import('./pages/compare').then((m) => m.comparePage), nav: true },
  { path: '/settings', label: 'Settings', page: () => import('./pages/settings').then((m) => m.settingsPage), nav: true },
  { path: '/setup', label: 'Setup', page: () => import('./pages/setup').then((m) => m.setupPage), nav: true },
];

const app = document.getElementById('app')!;
const navEl = h('nav', { class: 'nav', 'aria-label': 'Main' });
const siteSelect = h('select', { testid: 'site-select', 'aria-label': 'Site', class: 'site-select' });
const adminEl = h('div', { class: 'admin-status', testid: 'admin-status' });
const view = h('main', { class: 'view', id: 'view', tabindex: '-1' });

function logo(): SVGElement {
  return svg(
    'svg',
    { viewBox: '0 0 24 24', width: 22, height: 22, 'aria-hidden': 'true', class: 'logo' },
    svg('rect', { x: 1, y: 1, width: 22, height: 22, rx: 5, class: 'logo-bg' }),
    svg('path', { d: 'M4 8h16M4 16h16', class: 'logo-limit' }),
    svg('path', { d: 'M4 13 L8 11 L11 14 L14 9 L17 12 L20 6', class: 'logo-line' }),
  );
}

mount(
  app,
  h('header', { class: 'topbar' },
    link('/', { class: 'brand', testid: 'brand' }, logo(), h('span', null, 'LLMscope')),
    navEl,
    h('div', { class: 'topbar-right' },
      h('label', { class: 'site-picker' }, h('span', { class: 'muted' }, 'Site'), siteSelect),
      adminEl)),
  view,
);

function renderNav(): void {
  const path = location.pathname;
  mount(
    navEl,
    ROUTES.filter((r) => r.nav).map((r) =>
      link(href(r.path), { class: path === r.path ? 'active' : '', testid: `nav-${r.label.toLowerCase()}`, 'aria-current': path === r.path ? 'page' : undefined }, r.label),
    ),
  );
}

function renderAdmin(): void {
  if (adminToken()) {
    mount(adminEl,
      h('span', { class: 'badge badge-ok', title: 'An admin token is kept for this browser tab' }, 'admin'),
      h('button', { class: 'btn btn-small btn-ghost', type: 'button', testid: 'admin-forget', on: { click: () => setAdminToken(null) } }, 'Forget token'));
  } else {
    mount(adminEl);
  }
}
document.addEventListener('llmscope:token', renderAdmin);

let sites: SiteInfo[] = [];
async function loadSites(): Promise<void> {
  try {
    sites = await get<SiteInfo[]>('sites');
  } catch {
    sites = [];
  }
  renderSiteSelect();
}

function renderSiteSelect(): void {
  const cur = currentSite();
  const names = sites.map((s) => s.name);
  if (cur && !names.includes(cur)) names.push(cur);
  siteSelect.replaceChildren(h('option', { value: '' }, 'All sites'), ...names.map((n) => {
    const s = sites.find((x) => x.name === n);
    const suffix = s && s.open_violations > 0 ? ` (${s.open_violations} open)` : '';
    return h('option', { value: n }, n + suffix);
  }));
  siteSelect.value = cur;
}

siteSelect.addEventListener('change', () => {
  const site = siteSelect.value;
  rememberSite(site);
  const q = new URLSearchParams(location.search);
  q.set('site', site); // "site=" (all sites) stays explicit so it wins over localStorage
  // Series keys, hosts and pages belong to one site: drop them when the site changes.
  for (const k of ['key', 'host', 'cursor', 'id']) q.delete(k);
  navigate(`${location.pathname}?${q.toString()}`);
});

document.addEventListener('llmscope:sites', () => void loadSites());

let cleanups: Array<() => void> = [];
let controller: AbortController | null = null;

async function render(): Promise<void> {
  closeAllModals();
  cleanups.forEach((f) => {
    try {
      f();
    } catch {
      /* ignore */
    }
  });
  cleanups = [];
  controller?.abort();
  controller = new AbortController();
  const params = new URLSearchParams(location.search);
  if (params.has('site')) rememberSite(params.get('site') ?? '');
  renderNav();
  renderSiteSelect();
  const route = ROUTES.find((r) => r.path === location.pathname);
  document.title = route ? `${route.label} · LLMscope` : 'LLMscope';
  view.replaceChildren();
  view.className = `view page-${(route?.label ?? 'notfound').toLowerCase()}`;
  const ctx: PageCtx = {
    params,
    site: currentSite(),
    signal: controller.signal,
    onCleanup: (f) => cleanups.push(f),
  };
  try {
    view.append(loading());
    const page = route ? await route.page() : notFoundPage;
    if (ctx.signal.aborted) return;
    view.replaceChildren();
    await page(view, ctx);
  } catch (e) {
    if ((e as Error).name === 'AbortError') return;
    console.error(e);
    view.replaceChildren(notice('error', `This page failed to load: ${(e as Error).message}. Reload the page — the dashboard may have been updated.`, 'page-error'));
  }
}

setNavigateHandler(() => {
  void render();
  window.scrollTo(0, 0);
});
window.addEventListener('popstate', () => void render());

// Charts read their colours from CSS when drawn: follow the system theme live.
window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => void render());

async function start(): Promise<void> {
  renderAdmin();
  void loadSites();
  if (location.pathname === '/') {
    try {
      const s = await get<Setup>('setup');
      // First run: open the wizard once per browser session; the overview stays reachable.
      let shown = false;
      try {
        shown = sessionStorage.getItem('llmscope.setupShown') === '1';
        sessionStorage.setItem('llmscope.setupShown', '1');
      } catch {
        /* storage disabled */
      }
      if (s.first_run && !shown) history.replaceState(null, '', href('/setup'));
    } catch {
      /* the overview shows the error */
    }
  }
  await render();
}

void start();
