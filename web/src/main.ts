import 'uplot/dist/uPlot.min.css';
import './style.css';

import { can, currentMe, get, loadMe, mutate, toSignIn, type Role, type SiteInfo, type Setup } from './api';
import { h, mount, notice, svg } from './dom';
import { closeAllModals } from './modal';
import { currentSite, href, link, navigate, rememberSite, setNavigateHandler } from './router';
import type { PageCtx, PageFn } from './page';
import { overviewPage } from './pages/overview';
import { notFoundPage } from './pages/notfound';
import { loading } from './ui';

// The overview ships in the first bundle; other pages (and uPlot with them) load on demand.
// `role`: the least role that sees the page (its link is hidden from others); `bare`: no
// navigation (the sign-in page).
const ROUTES: Array<{ path: string; label: string; page: () => Promise<PageFn>; nav: boolean; role?: Role; bare?: boolean }> = [
  { path: '/', label: 'Overview', page: async () => overviewPage, nav: true },
  { path: '/series', label: 'Series', page: () => import('./pages/series').then((m) => m.seriesPage), nav: true },
  { path: '/incidents', label: 'Incidents', page: () => import('./pages/incidents').then((m) => m.incidentsPage), nav: true },
  { path: '/violations', label: 'Violations', page: () => import('./pages/violations').then((m) => m.violationsPage), nav: true },
  { path: '/compare', label: 'Compare', page: () => import('./pages/compare').then((m) => m.comparePage), nav: true },
  { path: '/intervals', label: 'OTLP', page: () => import('./pages/intervals').then((m) => m.intervalsPage), nav: true },
  { path: '/capability', label: 'Capability', page: () => import('./pages/capability').then((m) => m.capabilityPage), nav: true },
  { path: '/planning', label: 'Planning', page: () => import('./pages/planning').then((m) => m.planningPage), nav: true },
  { path: '/settings', label: 'Settings', page: () => import('./pages/settings').then((m) => m.settingsPage), nav: true },
  { path: '/setup', label: 'Setup', page: () => import('./pages/setup').then((m) => m.setupPage), nav: true, role: 'admin' },
  { path: '/users', label: 'Users', page: () => import('./pages/users').then((m) => m.usersPage), nav: true, role: 'admin' },
  { path: '/audit', label: 'Audit', page: () => import('./pages/audit').then((m) => m.auditPage), nav: true, role: 'admin' },
  { path: '/account', label: 'Account', page: () => import('./pages/account').then((m) => m.accountPage), nav: false },
  { path: '/signin', label: 'Sign in', page: () => import('./pages/signin').then((m) => m.signinPage), nav: false, bare: true },
];

const app = document.getElementById('app')!;
const navEl = h('nav', { class: 'nav', 'aria-label': 'Main' });
const siteSelect = h('select', { testid: 'site-select', 'aria-label': 'Site', class: 'site-select' });
const userEl = h('div', { class: 'user-status', testid: 'user-status' });
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
      userEl)),
  view,
);

function renderNav(): void {
  const path = location.pathname;
  mount(
    navEl,
    ROUTES.filter((r) => r.nav && (!r.role || can(r.role))).map((r) =>
      link(href(r.path), { class: path === r.path ? 'active' : '', testid: `nav-${r.label.toLowerCase()}`, 'aria-current': path === r.path ? 'page' : undefined }, r.label),
    ),
  );
}

/** The user menu: who is signed in, their role, their account page, signing out. */
function renderUser(): void {
  const me = currentMe();
  if (!me?.user) {
    // a wall screen (anonymous reading) may still sign in
    mount(userEl, me?.signed_in && location.pathname !== '/signin'
      ? link(href('/signin', { next: location.pathname + location.search, site: null }), { class: 'btn btn-small', testid: 'user-signin' }, 'Sign in')
      : null);
    return;
  }
  const u = me.user;
  const signOut = h('button', { class: 'menu-item', type: 'button', testid: 'user-signout' }, 'Sign out');
  signOut.addEventListener('click', async () => {
    try {
      await mutate('POST', 'auth/logout');
    } catch {
      /* the session may be gone already */
    }
    await loadMe().catch(() => null);
    toSignIn();
  });
  const menu = h('details', { class: 'user-menu', testid: 'user-menu' },
    h('summary', { testid: 'user-menu-button', title: `${u.email} (${u.role})` },
      h('span', { class: 'user-avatar', 'aria-hidden': 'true' }, (u.name || u.email).slice(0, 1).toUpperCase()),
      h('span', { class: 'user-email', testid: 'user-email' }, u.email),
      h('span', { class: `badge badge-role-${u.role}`, testid: 'user-role' }, u.role)),
    h('div', { class: 'menu', role: 'menu' },
      h('div', { class: 'menu-head muted small' }, u.sites ? `Sites: ${u.sites.join(', ')}` : 'All sites'),
      link(href('/account'), { class: 'menu-item', testid: 'user-account' }, 'Your account & tokens'),
      signOut));
  menu.addEventListener('click', (ev) => {
    if ((ev.target as HTMLElement).closest('.menu-item')) menu.open = false;
  });
  mount(userEl, menu);
}
document.addEventListener('llmscope:me', () => {
  renderUser();
  renderNav();
  if (currentMe()?.signed_in) void loadSites();
});
document.addEventListener('click', (ev) => {
  const open = document.querySelector<HTMLDetailsElement>('details.user-menu[open]');
  if (open && !open.contains(ev.target as Node)) open.open = false;
});

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
  const route = ROUTES.find((r) => r.path === location.pathname);
  const me = currentMe();
  // reading needs a signed-in user or a token, unless anonymous reading is on
  if (!route?.bare && me && !me.signed_in) {
    toSignIn();
    return;
  }
  document.body.classList.toggle('bare', !!route?.bare);
  renderNav();
  renderUser();
  renderSiteSelect();
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
    if (route?.role && !can(route.role)) {
      view.replaceChildren(notice('error', `This page needs the ${route.role} role; you are ${me?.role ?? 'not signed in'}.`, 'page-forbidden'));
      return;
    }
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
  try {
    await loadMe();
  } catch (e) {
    view.replaceChildren(notice('error', `The collector cannot be reached: ${(e as Error).message}`, 'page-error'));
    return;
  }
  if (!currentMe()?.signed_in) {
    if (location.pathname !== '/signin') toSignIn();
    else await render();
    return;
  }
  void loadSites();
  if (location.pathname === '/' && can('admin')) {
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
