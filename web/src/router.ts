// History-API routing. Pages are client-side paths (/, /series, /violations, /compare,
// /settings, /setup) with their state in query parameters, so every view has a URL.
// The site selected in the header travels as `site=` on every link and is remembered in
// localStorage.

import { h, type Attrs, type Child } from './dom';

const SITE_KEY = 'llmscope.site';

type Params = Record<string, string | number | null | undefined | string[]>;

let onNavigate: () => void = () => {};

export function setNavigateHandler(fn: () => void): void {
  onNavigate = fn;
}

/** The selected site ('' = all sites): the URL wins, then localStorage. */
export function currentSite(): string {
  const p = new URLSearchParams(location.search);
  if (p.has('site')) return p.get('site') ?? '';
  try {
    return localStorage.getItem(SITE_KEY) ?? '';
  } catch {
    return '';
  }
}

export function rememberSite(site: string): void {
  try {
    if (site) localStorage.setItem(SITE_KEY, site);
    else localStorage.removeItem(SITE_KEY);
  } catch {
    /* ignore */
  }
}

/** A URL for a page, carrying the selected site unless `site` is given explicitly. */
export function href(path: string, params: Params = {}): string {
  const q = new URLSearchParams();
  const merged: Params = { site: currentSite(), ...params };
  for (const [k, v] of Object.entries(merged)) {
    if (v === null || v === undefined || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export function navigate(url: string, replace = false): void {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  onNavigate();
}

/** Changes some query parameters of the current page and re-renders it. */
export function updateParams(update: Params, replace = false): void {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(update)) {
    q.delete(k);
    if (v === null || v === undefined || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, String(v));
  }
  const s = q.toString();
  navigate(s ? `${location.pathname}?${s}` : location.pathname, replace);
}

/** Changes query parameters without re-rendering (state already shown). */
export function replaceParams(update: Params): void {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(update)) {
    q.delete(k);
    if (v === null || v === undefined || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else q.set(k, String(v));
  }
  const s = q.toString();
  history.replaceState(null, '', s ? `${location.pathname}?${s}` : location.pathname);
}

/** An in-app link: a real <a href> (open in new tab works) that routes without reloading. */
export function link(url: string, attrs: Attrs | null, ...children: Child[]): HTMLAnchorElement {
  const a = h('a', { ...attrs, href: url }, ...children);
  a.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    navigate(a.getAttribute('href')!);
  });
  return a;
}
