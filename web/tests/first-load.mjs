#!/usr/bin/env node
// First-load time of the dashboard against a running collector, in headless Chromium: from the
// start of the navigation to `/` until the overview grid shows its first cell (Performance API:
// a MutationObserver installed before any page script records performance.now()). Each cold
// run uses a fresh browser context (empty cache); each warm run reloads in the same context
// (hashed assets come from the cache). Prints medians and the bytes transferred.
//
//   LLMSCOPE_URL=http://127.0.0.1:8080 node web/tests/first-load.mjs      # RUNS=15 by default
//
// The collector needs at least one series (an overview cell), e.g. `make run` after a minute.

import { chromium } from 'playwright-core';

const BASE = (process.env.LLMSCOPE_URL ?? '').replace(/\/+$/, '');
const RUNS = Number(process.env.RUNS ?? 15);
const CHROMIUM = process.env.LLMSCOPE_CHROMIUM ?? '/usr/bin/chromium';
if (!BASE) {
  console.error('LLMSCOPE_URL is not set (e.g. http://127.0.0.1:8080)');
  process.exit(2);
}

function watchGrid() {
  const seen = () => document.querySelector('[data-testid="overview-grid"] [data-testid="overview-cell"]');
  const obs = new MutationObserver(() => {
    if (seen() && window.__gridAt === undefined) {
      window.__gridAt = performance.now();
      obs.disconnect();
    }
  });
  obs.observe(document, { childList: true, subtree: true });
}

async function measure(page) {
  await page.waitForFunction(() => window.__gridAt !== undefined, null, { timeout: 20_000 });
  return page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const res = performance.getEntriesByType('resource');
    const bytes = (nav?.transferSize ?? 0) + res.reduce((a, r) => a + (r.transferSize ?? 0), 0);
    const js = res.filter((r) => r.name.endsWith('.js')).reduce((a, r) => a + (r.transferSize ?? 0), 0);
    return { grid: window.__gridAt, ttfb: nav?.responseStart ?? 0, dcl: nav?.domContentLoadedEventEnd ?? 0, bytes, js, requests: res.length + 1 };
  });
}

const median = (xs) => {
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const cold = [];
const warm = [];
try {
  for (let i = 0; i < RUNS + 1; i++) {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    await context.addInitScript(watchGrid);
    const page = await context.newPage();
    await page.goto(`${BASE}/?site=`);
    const c = await measure(page);
    await page.reload();
    const w = await measure(page);
    await context.close();
    if (i === 0) continue; // the first run warms the collector and the browser process
    cold.push(c);
    warm.push(w);
  }
} finally {
  await browser.close();
}

const fmt = (runs, k) => median(runs.map((r) => r[k])).toFixed(0);
console.log(`runs: ${RUNS} (after one warm-up) against ${BASE}`);
console.log(`cold: grid ${fmt(cold, 'grid')} ms (TTFB ${fmt(cold, 'ttfb')} ms, DOMContentLoaded ${fmt(cold, 'dcl')} ms), ${cold[0].requests} requests, ${fmt(cold, 'bytes')} B transferred (JS ${fmt(cold, 'js')} B)`);
console.log(`warm: grid ${fmt(warm, 'grid')} ms (TTFB ${fmt(warm, 'ttfb')} ms, DOMContentLoaded ${fmt(warm, 'dcl')} ms), ${fmt(warm, 'bytes')} B transferred`);
console.log(`grid ms, cold: min ${Math.min(...cold.map((r) => r.grid)).toFixed(0)} max ${Math.max(...cold.map((r) => r.grid)).toFixed(0)}`);
