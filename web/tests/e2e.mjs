#!/usr/bin/env node
// Browser end-to-end test of the dashboard in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium). It drives a running collector that follows docs/api.md and has seeded
// data with at least one open violation and a series whose model name is an XSS string.
//
//   LLMSCOPE_URL=http://127.0.0.1:8080 LLMSCOPE_ADMIN_TOKEN=llms_… node tests/e2e.mjs
//
// The admin token is used once, as an operator bootstraps a collector: it creates the first
// admin user through the API; everything else happens signed in through the sign-in page.
//
// Env: LLMSCOPE_URL (required), LLMSCOPE_ADMIN_TOKEN (required: the bootstrap),
// LLMSCOPE_SCREENSHOTS (default artifacts/screenshots), LLMSCOPE_XSS_MODEL (default
// `<img src=x onerror=window.__xss=1>`), LLMSCOPE_CHROMIUM (default /usr/bin/chromium),
// LLMSCOPE_RECEIVER_HOST (default 127.0.0.1: where the collector reaches this test's webhook).
// Ends with the line "N passed, N failed"; exits non-zero when a step failed.

import { chromium } from 'playwright-core';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

const BASE = (process.env.LLMSCOPE_URL ?? '').replace(/\/+$/, '');
const ADMIN = process.env.LLMSCOPE_ADMIN_TOKEN ?? '';
const SHOTS = path.resolve(process.env.LLMSCOPE_SCREENSHOTS ?? 'artifacts/screenshots');
const XSS = process.env.LLMSCOPE_XSS_MODEL ?? '<img src=x onerror=window.__xss=1>';
const CHROMIUM = process.env.LLMSCOPE_CHROMIUM ?? '/usr/bin/chromium';
const RECEIVER_HOST = process.env.LLMSCOPE_RECEIVER_HOST ?? '127.0.0.1';
const T = 20_000;

if (!BASE) {
  console.error('LLMSCOPE_URL is not set (e.g. http://127.0.0.1:8080)');
  process.exit(2);
}
if (!ADMIN) {
  console.error('LLMSCOPE_ADMIN_TOKEN is not set');
  process.exit(2);
}
fs.mkdirSync(SHOTS, { recursive: true });

let passed = 0;
let failed = 0;
const results = [];
const pageErrors = [];

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function shot(page, name, fullPage = true) {
  await page.waitForTimeout(150); // let charts paint
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
}

async function step(name, page, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    results.push(`ok   ${name} (${Date.now() - t0} ms)`);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    return true;
  } catch (e) {
    failed++;
    results.push(`FAIL ${name}: ${e.message}`);
    console.log(`FAIL ${name}: ${e.stack ?? e.message}`);
    try {
      await shot(page, `FAILED-${name.replace(/[^a-z0-9]+/gi, '-')}`);
    } catch {
      /* ignore */
    }
    return false;
  }
}

const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

/** Waits for `outcome` of a change. */
async function untilDone(page, outcome, timeout = T) {
  await outcome.first().waitFor({ timeout });
}

/** Signs in through the sign-in page (the browser is there or gets there). */
async function signIn(page, email, password) {
  await byTestId(page, 'signin-form').waitFor();
  await byTestId(page, 'signin-email').fill(email);
  await byTestId(page, 'signin-password').fill(password);
  await byTestId(page, 'signin-submit').click();
  await page.waitForURL((u) => new URL(u).pathname !== '/signin');
  await byTestId(page, 'user-email').waitFor();
}

/** Signs out from the user menu; ends on the sign-in page. */
async function signOut(page) {
  await byTestId(page, 'user-menu-button').click();
  await byTestId(page, 'user-signout').click();
  await page.waitForURL(/\/signin/);
}

async function xssInert(page) {
  const flag = await page.evaluate(() => window.__xss);
  assert(flag === undefined, `window.__xss is ${flag}: an injected label ran`);
  const imgs = await page.locator('img[src="x"]').count();
  assert(imgs === 0, `found ${imgs} <img src=x> elements built from a label`);
}

// A webhook receiver the collector posts the channel test to.
const nonce = `e2e-${Date.now().toString(36)}`;
const received = [];
const receiver = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    received.push({ url: req.url, body });
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`received by ${nonce}`);
  });
});
await new Promise((r) => receiver.listen(0, '0.0.0.0', r));
const receiverUrl = `http://${RECEIVER_HOST}:${receiver.address().port}/hook`;

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true, colorScheme: 'light', locale: 'en-GB', timezoneId: 'Europe/Berlin' });
context.setDefaultTimeout(T);
const page = await context.newPage();
page.on('pageerror', (e) => pageErrors.push(e.message));
page.on('dialog', (d) => void d.accept());

let violationId = null;
const ADMIN_EMAIL = `admin-${nonce}@example.com`;
let adminPw = `first admin password ${nonce}`;
const VIEWER_EMAIL = `viewer-${nonce}@example.com`;
const VIEWER_PW = `viewer password ${nonce}`;

try {
  await step('bootstrap: the admin token creates the first admin; the browser signs in', page, async () => {
    const r = await fetch(`${BASE}/api/v1/users`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: ADMIN_EMAIL, role: 'admin', password: adminPw, name: 'E2E Admin' }),
    });
    assert(r.status === 201, `creating the first admin: ${r.status} ${await r.text()}`);
    // not signed in: any page sends the browser to the sign-in page, and back afterwards
    await page.goto(`${BASE}/violations?site=`);
    await page.waitForURL(/\/signin\?next=/);
    await byTestId(page, 'signin-form').waitFor();
    await shot(page, '00-signin', false);
    await byTestId(page, 'signin-email').fill(ADMIN_EMAIL);
    await byTestId(page, 'signin-password').fill('not the password at all');
    await byTestId(page, 'signin-submit').click();
    const err = (await byTestId(page, 'signin-error').textContent()) ?? '';
    assert(/wrong email or password/.test(err), `the error does not say what is wrong: ${err}`);
    await signIn(page, ADMIN_EMAIL, adminPw);
    assert(new URL(page.url()).pathname === '/violations', `back at ${page.url()}`);
    assert((await byTestId(page, 'user-email').textContent()) === ADMIN_EMAIL, 'the user menu names the user');
    assert((await byTestId(page, 'user-role').textContent()) === 'admin', 'the user menu shows the role');
    for (const nav of ['users', 'audit', 'setup']) assert(await byTestId(page, `nav-${nav}`).isVisible(), `an admin sees ${nav}`);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'llmscope_session');
    assert(session && session.httpOnly && session.sameSite === 'Lax', `session cookie: ${JSON.stringify(session)}`);
    assert(await page.evaluate(() => !document.cookie.includes('llmscope_session')), 'scripts cannot read the session cookie');
  });

  await step('login to first paint of the overview (5 sign-ins)', page, async () => {
    const times = [];
    for (let i = 0; i < 5; i++) {
      await signOut(page);
      await page.goto(`${BASE}/signin?next=${encodeURIComponent('/?site=')}`);
      await byTestId(page, 'signin-email').fill(ADMIN_EMAIL);
      await byTestId(page, 'signin-password').fill(adminPw);
      const t0 = Date.now();
      await byTestId(page, 'signin-submit').click();
      await byTestId(page, 'overview-cell').first().waitFor();
      times.push(Date.now() - t0);
    }
    times.sort((a, b) => a - b);
    const line = `login→first paint (submit to overview grid drawn, ms): median ${times[2]}, min ${times[0]}, max ${times[4]} (${times.join(', ')})`;
    results.push(line);
    console.log(line);
  });

  await step('overview shows the sites × models grid', page, async () => {
    await page.goto(`${BASE}/`);
    await byTestId(page, 'overview-grid').waitFor();
    const cells = await byTestId(page, 'overview-cell').count();
    assert(cells > 0, 'no overview cells');
    const statuses = await byTestId(page, 'overview-cell').evaluateAll((els) => els.map((e) => e.getAttribute('data-status')));
    assert(statuses.every((s) => ['in_control', 'violation', 'learning'].includes(s)), `unexpected statuses ${statuses}`);
    assert(statuses.includes('violation'), 'no cell shows a violation');
    assert(await byTestId(page, 'overview-grid').locator('svg.spark').count() > 0, 'no sparklines');
    await shot(page, '01-overview');
  });

  await step('XSS label stays inert and is shown literally', page, async () => {
    await page.goto(`${BASE}/?site=`);
    await byTestId(page, 'overview-grid').waitFor();
    await page.getByText(XSS, { exact: true }).first().waitFor();
    await xssInert(page);
    await byTestId(page, 'overview-filter').fill('onerror');
    await page.waitForTimeout(300);
    assert((await byTestId(page, 'overview-cell').count()) >= 1, 'filter hides the XSS model');
    await shot(page, '02-overview-xss-filtered');
    await xssInert(page);
  });

  await step('series: control chart with violation markers', page, async () => {
    await page.goto(`${BASE}/?site=`);
    await byTestId(page, 'overview-grid').waitFor();
    await byTestId(page, 'overview-cell').and(page.locator('[data-status="violation"]')).first().click();
    await page.waitForURL(/\/series\?.*key=/);
    const chart = byTestId(page, 'control-chart');
    await page.locator('[data-testid="control-chart"][data-flagged-count]').waitFor();
    await chart.locator('canvas').first().waitFor();
    let flagged = Number(await chart.getAttribute('data-flagged-count'));
    for (const w of ['24h', '7d', '30d']) {
      if (flagged > 0) break;
      const before = page.url();
      await byTestId(page, `window-${w}`).click();
      await page.waitForURL((u) => u.toString() !== before);
      await page.locator('[data-testid="control-chart"][data-flagged-count]').waitFor();
      await page.waitForTimeout(300);
      flagged = Number(await chart.getAttribute('data-flagged-count'));
    }
    assert(flagged > 0, 'no flagged points drawn in any window');
    const chips = await page.locator('[data-testid^="legend-rule-"]').count();
    assert(chips > 0, 'no rule in the legend');
    const sum = await page.locator('[data-testid^="legend-rule-"]').evaluateAll((els) => els.reduce((a, e) => a + Number(e.getAttribute('data-count')), 0));
    assert(sum >= flagged, `legend counts ${sum} < flagged points ${flagged}`);
    assert((await byTestId(page, 'legend-alarm').count()) >= 1, 'the CUSUM page is not shown on the chart');
    await byTestId(page, 'detection-pages').waitFor();
    await byTestId(page, 'telemetry-cpu').or(byTestId(page, 'telemetry-empty')).first().waitFor();
    // the fixture's host also reports its model server's queue and KV cache (vLLM /metrics)
    if (await byTestId(page, 'telemetry-cpu').count()) {
      await byTestId(page, 'telemetry-server-requests-waiting').waitFor();
      await byTestId(page, 'telemetry-server-kv-cache-usage-pct').waitFor();
    }
    await shot(page, '03-series');
    await xssInert(page);
  });

  await step('series of the XSS model renders its name as text', page, async () => {
    await page.goto(`${BASE}/series?site=`);
    await byTestId(page, 'series-table').waitFor();
    const row = byTestId(page, 'series-row').filter({ hasText: XSS }).first();
    await row.getByTestId('series-link').click();
    await byTestId(page, 'series-title').waitFor();
    assert((await byTestId(page, 'series-title').textContent()) === XSS, 'title is not the literal model name');
    await page.locator('[data-testid="control-chart"][data-flagged-count], [data-testid="chart-empty"]').first().waitFor();
    await shot(page, '04-series-xss');
    await xssInert(page);
  });

  await step('violations: table, detail modal, acknowledge', page, async () => {
    await page.goto(`${BASE}/violations?site=&status=open`);
    await byTestId(page, 'violations-table').waitFor();
    await shot(page, '05-violations');
    const row = byTestId(page, 'violation-row').first();
    violationId = await row.getAttribute('data-violation-id');
    assert(violationId, 'row has no violation id');
    const opener = row.getByTestId('violation-open');
    await opener.click();
    const modal = byTestId(page, 'violation-modal');
    await modal.waitFor();
    await byTestId(page, 'rule-text').waitFor();
    assert(((await byTestId(page, 'rule-text').textContent()) ?? '').length > 20, 'no plain-words rule text');
    await page.locator('[data-testid="violation-chart"] canvas, [data-testid="violation-chart-empty"]').first().waitFor();
    await byTestId(page, 'violation-baseline').or(byTestId(page, 'violation-baseline-empty')).first().waitFor();
    await shot(page, '06-violation-modal', false);
    // keyboard: Tab stays inside the dialog; Esc closes it and gives focus back to the opener
    for (let i = 0; i < 25; i++) await page.keyboard.press('Tab');
    assert(await page.evaluate(() => !!document.activeElement?.closest('[data-testid="violation-modal"]')), 'Tab left the modal');
    for (let i = 0; i < 5; i++) await page.keyboard.press('Shift+Tab');
    assert(await page.evaluate(() => !!document.activeElement?.closest('[data-testid="violation-modal"]')), 'Shift+Tab left the modal');
    await page.keyboard.press('Escape');
    await modal.waitFor({ state: 'hidden' });
    assert(await opener.evaluate((e) => e === document.activeElement), 'focus did not return to the opener');
    await opener.click();
    await modal.waitFor();
    await byTestId(page, 'ack-note').fill('seen by the browser test');
    await byTestId(page, 'violation-ack').click();
    await untilDone(page, page.locator('[data-testid="violation-status"][data-status="acknowledged"]'));
    await shot(page, '07-violation-acknowledged', false);
    await page.keyboard.press('Escape');
    await modal.waitFor({ state: 'hidden' });
    // the table follows: the acknowledged episode is listed under the "acknowledged" filter
    await page.goto(`${BASE}/violations?site=&status=acknowledged`);
    const acked = page.locator(`[data-testid="violation-row"][data-violation-id="${violationId}"]`);
    await acked.waitFor();
    const rowStatus = await acked.getAttribute('data-status');
    assert(rowStatus === 'acknowledged', `row status is ${rowStatus}`);
    assert(((await acked.textContent()) ?? '').includes(ADMIN_EMAIL), 'row does not name the signed-in user who acknowledged');
  });

  await step('violations CSV for the current filter contains the violation', page, async () => {
    assert(violationId, 'no violation from the previous step');
    const v = await (await page.request.get(`${BASE}/api/v1/violations/${encodeURIComponent(violationId)}`)).json();
    const nelson = v.detector === 'nelson';
    const [fk, fv] = nelson ? ['rule', String(v.rule)] : ['detector', v.detector];
    await page.goto(`${BASE}/violations?site=${encodeURIComponent(v.site)}&host=${encodeURIComponent(v.host)}&${fk}=${encodeURIComponent(fv)}`);
    await byTestId(page, 'violations-table').waitFor();
    const link = byTestId(page, 'violations-csv');
    const href = await link.getAttribute('href');
    assert(href.startsWith('/api/v1/violations.csv?'), `CSV link is ${href}`);
    const q = new URLSearchParams(href.split('?')[1]);
    assert(q.get('site') === v.site && q.get('host') === v.host && q.get(fk) === fv, `CSV link does not carry the filter: ${href}`);
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const file = await download.path();
    const text = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(path.join(SHOTS, 'violations.csv'), text);
    assert(text.includes(String(violationId)), `CSV does not contain violation ${violationId}`);
  });

  await step('incidents: the shift is one incident listing its members', page, async () => {
    await page.goto(`${BASE}/incidents?site=`);
    await byTestId(page, 'incidents-table').waitFor();
    const rows = byTestId(page, 'incident-row');
    assert((await rows.count()) >= 1, 'no incident listed');
    const row = rows.first();
    const members = Number(await row.getByTestId('incident-member-count').textContent());
    assert(members >= 2, `the incident lists ${members} member(s)`);
    await shot(page, '05b-incidents');
    await row.getByTestId('incident-open').click();
    const modal = byTestId(page, 'incident-modal');
    await modal.waitFor();
    await byTestId(page, 'incident-members').waitFor();
    const items = modal.locator('[data-testid="incident-member"]');
    assert((await items.count()) === members, 'the modal lists every member');
    const lead = modal.locator('[data-testid="incident-member"][data-lead="true"]');
    assert((await lead.getAttribute('data-detector')) === 'cusum', 'the sustained shift leads the incident');
    assert((await modal.locator('[data-testid="incident-member"][data-detector="nelson"]').count()) >= 1, 'no rule marker among the members');
    await xssInert(page);
    await shot(page, '05c-incident-modal', false);
    await page.keyboard.press('Escape');
    await modal.waitFor({ state: 'hidden' });
    // the violations table names each finding's severity and incident
    await page.goto(`${BASE}/violations?site=&detector=cusum`);
    await byTestId(page, 'violations-table').waitFor();
    const sev = await byTestId(page, 'violation-row-severity').first().getAttribute('data-severity');
    assert(sev === 'error', `the CUSUM's severity is ${sev}`);
    assert((await byTestId(page, 'violation-incident').count()) >= 1, 'no incident link');
  });

  await step('settings: create a silence and see it listed', page, async () => {
    await page.goto(`${BASE}/settings?tab=silences`);
    await byTestId(page, 'silence-form').waitFor();
    const comment = `e2e maintenance ${nonce}`;
    await byTestId(page, 'silence-site').fill('');
    await byTestId(page, 'silence-model').fill('llama3');
    await byTestId(page, 'silence-for-4h').click();
    await byTestId(page, 'silence-comment').fill(comment);
    await byTestId(page, 'silence-create').click();
    await untilDone(page, byTestId(page, 'silence-row').filter({ hasText: comment }));
    assert(((await byTestId(page, 'silence-row').filter({ hasText: comment }).textContent()) ?? '').includes(ADMIN_EMAIL), 'the silence names its author');
    await shot(page, '08-settings-silences');
  });

  await step('settings: other tabs render', page, async () => {
    for (const [tab, ready] of [
      ['channels', 'channel-form'],
      ['routes', 'route-create'],
      ['detection', 'fleet-false-pages'],
      ['rules', 'rules-marker-rate'],
      ['tokens', 'token-create'],
      ['baselines', 'rebaseline-submit'],
      ['cluster', 'replicas-table'],
    ]) {
      await page.goto(`${BASE}/settings?tab=${tab}`);
      await byTestId(page, ready).waitFor();
      await page.locator('[data-testid="loading"]').first().waitFor({ state: 'detached', timeout: T }).catch(() => {});
      await shot(page, `09-settings-${tab}`);
    }
  });

  await step('compare: two series side by side and overlaid', page, async () => {
    await page.goto(`${BASE}/compare?site=`);
    await byTestId(page, 'compare-option').first().waitFor();
    const boxes = byTestId(page, 'compare-option');
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    await byTestId(page, 'compare-apply').click();
    await byTestId(page, 'compare-overlay').locator('canvas').waitFor();
    assert((await byTestId(page, 'compare-multiple').count()) === 2, 'not two small multiples');
    // two series of one metric: the A/B verdict in words, with the statistics behind it
    await byTestId(page, 'ab-verdict').waitFor();
    const verdict = await byTestId(page, 'ab-verdict').textContent();
    assert(/^(B's .* (lower|higher) \(95 % CI|No clear difference)/.test(verdict ?? ''), `verdict: ${verdict}`);
    assert((await byTestId(page, 'ab-table').locator('tr').count()) === 6, 'A/B statistics table');
    await shot(page, '10-compare');
  });

  await step('capability: Cpk and Ppk of a series against an SLO limit, with the histogram', page, async () => {
    await page.goto(`${BASE}/capability?site=`);
    await byTestId(page, 'cap-empty').waitFor();
    await page.locator('[data-testid="cap-key"] option:nth-child(2)').waitFor({ state: 'attached' });
    // the fixture's busiest series: llama3's latency
    const value = await page.locator('[data-testid="cap-key"] option').evaluateAll((os) =>
      (os.find((o) => (o.textContent ?? '').includes('llama3') && (o.textContent ?? '').includes('Latency')) ?? os[1]).value);
    await byTestId(page, 'cap-key').selectOption(value);
    await byTestId(page, 'cap-usl').fill('400');
    await byTestId(page, 'cap-apply').click();
    await byTestId(page, 'cap-cpk').waitFor();
    const cpk = await byTestId(page, 'cap-cpk').textContent();
    assert(/-?\d+\.\d\d \(-?\d+\.\d\d–-?\d+\.\d\d\)/.test(cpk ?? ''), `Cpk cell: ${cpk}`);
    assert((await byTestId(page, 'cap-histogram').locator('.hist-bin').count()) === 40, 'histogram bins');
    await shot(page, '10b-capability');
    // below it, the daily p95 from the daily rollups with its trend line and forecast
    await byTestId(page, 'trend-chart').locator('canvas').first().waitFor();
    const summary = await byTestId(page, 'trend-summary').textContent();
    assert(/p95|forecast|consecutive days/.test(summary ?? ''), `trend summary: ${summary}`);
    const csv = await byTestId(page, 'trend-csv').getAttribute('href');
    assert(/format=csv/.test(csv ?? ''), `trend csv link: ${csv}`);
    await byTestId(page, 'trend-chart').scrollIntoViewIfNeeded();
    await shot(page, '10c-trend');
  });

  await step('planning: an SLO with its attainment and burn rates, cost with a price, capacity', page, async () => {
    await page.goto(`${BASE}/planning?site=`);
    await byTestId(page, 'plan-panel-slos').waitFor();
    const form = byTestId(page, 'slo-form');
    await form.locator('input[name="name"]').fill('lab latency');
    await form.locator('input[name="site"]').fill('lab');
    await form.locator('select[name="metric"]').selectOption('latency_ms');
    await form.locator('input[name="threshold"]').fill('400');
    await form.locator('input[name="objective"]').fill('0.95');
    await form.locator('button[type="submit"]').click();
    const row = page.locator('[data-testid="slo-row"][data-name="lab latency"]');
    await row.waitFor();
    const att = await row.locator('[data-testid="slo-attainment"]').textContent();
    assert(/\d+\.\d+ %|—/.test(att ?? ''), `attainment: ${att}`);
    // a bad SLO names the field (the form was drawn again after the save)
    await form.locator('input[name="name"]').fill('broken');
    await form.locator('select[name="metric"]').selectOption('latency_ms');
    await form.locator('input[name="threshold"]').fill('400');
    await form.locator('input[name="objective"]').fill('95');
    await form.locator('button[type="submit"]').click();
    const err = await byTestId(page, 'slo-form-error').textContent();
    assert(/objective/.test(err ?? ''), `the error names the field: ${err}`);
    await shot(page, '11-planning-slos');
    await byTestId(page, 'plan-tab-cost').click();
    await byTestId(page, 'plan-panel-cost').waitFor();
    const pf = byTestId(page, 'price-form');
    await pf.locator('input[name="provider"]').fill('ollama');
    await pf.locator('input[name="model"]').fill('llama3');
    await pf.locator('input[name="input_per_m"]').fill('0.5');
    await pf.locator('input[name="output_per_m"]').fill('1.5');
    await pf.locator('button[type="submit"]').click();
    await byTestId(page, 'price-row').first().waitFor();
    await byTestId(page, 'cost-row').first().waitFor();
    const fc = await byTestId(page, 'cost-forecast').textContent();
    assert(/Spent .* month ends near/.test(fc ?? ''), `forecast: ${fc}`);
    await shot(page, '11b-planning-cost');
    await byTestId(page, 'plan-tab-capacity').click();
    await byTestId(page, 'plan-panel-capacity').waitFor();
    await page.locator('[data-testid="capacity-sites"], [data-testid="capacity-empty"]').first().waitFor();
    await shot(page, '11c-planning-capacity');
  });

  await step('OTLP metrics: the interval series and its X̄ chart marks the slower intervals', page, async () => {
    await page.goto(`${BASE}/intervals?site=`);
    await byTestId(page, 'interval-series-link').first().waitFor();
    await byTestId(page, 'interval-series-link').filter({ hasText: 'llama3' }).first().click();
    await byTestId(page, 'interval-chart').locator('canvas').waitFor();
    const limits = await byTestId(page, 'interval-limits').textContent();
    assert(/centre .* ms, UCL .* ms/.test(limits ?? ''), `limits: ${limits}`);
    const rows = await byTestId(page, 'interval-row').count();
    assert(rows === 40, `${rows} interval rows, want 40`);
    // the newest intervals (the slower ones) carry rule chips
    const first = byTestId(page, 'interval-row').first();
    assert((await first.locator('.rule-tag').count()) > 0, 'the newest (slower) interval is not marked');
    const marked = await byTestId(page, 'interval-row').filter({ has: page.locator('.rule-tag') }).count();
    assert(marked >= 4 && marked <= 14, `${marked} intervals marked; the 8 slower ones (and a few of their neighbours by the run rules) expected`);
    await shot(page, '10b-otlp-metrics');
  });

  await step('setup wizard end to end', page, async () => {
    const site = `e2e-${Date.now().toString(36)}`;
    await page.goto(`${BASE}/setup`);
    await byTestId(page, 'setup-site-name').waitFor();
    // validation says what is wrong
    await byTestId(page, 'setup-site-name').fill('bad name!');
    await byTestId(page, 'setup-site-submit').click();
    const msg = await byTestId(page, 'setup-validation').textContent();
    assert(/not allowed|letters/.test(msg ?? ''), `validation message unclear: ${msg}`);
    await shot(page, '11-setup-1-site');
    await byTestId(page, 'setup-site-name').fill(site);
    await byTestId(page, 'setup-site-submit').click();
    await untilDone(page, byTestId(page, 'setup-token-create'));
    await byTestId(page, 'setup-token-create').click();
    await untilDone(page, byTestId(page, 'setup-token'));
    const token = ((await byTestId(page, 'setup-token').textContent()) ?? '').trim();
    assert(token.length >= 8, `token looks wrong: ${token}`);
    await shot(page, '12-setup-2-token');
    await byTestId(page, 'setup-next').click();
    for (const kind of ['binary', 'docker', 'helm']) {
      const cmd = (await byTestId(page, `setup-cmd-${kind}`).textContent()) ?? '';
      assert(cmd.includes(token), `${kind} install command lacks the token`);
      assert(cmd.includes(site), `${kind} install command lacks the site`);
    }
    // an instrumented application: the OTLP endpoint (the receiver's own port) and the token
    const otel = (await byTestId(page, 'setup-cmd-otel').textContent()) ?? '';
    const setupInfo = await page.evaluate(async () => (await fetch('/api/v1/setup')).json());
    const otlpPort = (setupInfo.otlp_grpc_addr ?? setupInfo.grpc_addr).split(':').pop();
    assert(otel.includes(`authorization=Bearer%20${token}`), `OpenTelemetry commands lack the token header: ${otel}`);
    assert(new RegExp(`OTEL_EXPORTER_OTLP_ENDPOINT=http://[^\\s]+:${otlpPort}\\b`).test(otel), `OpenTelemetry endpoint is not the OTLP port ${otlpPort}: ${otel}`);
    assert(otel.includes('OTEL_METRICS_EXPORTER=otlp'), `OpenTelemetry commands do not export metrics: ${otel}`);
    await shot(page, '13-setup-3-install');
    await byTestId(page, 'setup-next').click();
    // channel validation first, then a real test send
    await byTestId(page, 'setup-channel-name').fill(`hook-${nonce}`);
    await byTestId(page, 'setup-channel-kind').selectOption('webhook');
    await byTestId(page, 'setup-channel-url').fill('not a url');
    await byTestId(page, 'setup-channel-create').click();
    await byTestId(page, 'setup-channel-validation').waitFor();
    await byTestId(page, 'setup-channel-url').fill(receiverUrl);
    await byTestId(page, 'setup-channel-create').click();
    await untilDone(page, byTestId(page, 'setup-channel-test'));
    await byTestId(page, 'setup-channel-test').click();
    await untilDone(page, byTestId(page, 'setup-channel-test-result'));
    const answer = (await byTestId(page, 'setup-channel-test-result').textContent()) ?? '';
    assert(answer.includes(`received by ${nonce}`), `test send did not show the receiver's answer: ${answer}`);
    assert(received.length > 0, 'the receiver got nothing');
    await shot(page, '14-setup-4-channel');
    await byTestId(page, 'setup-next').click();
    await byTestId(page, 'setup-done').waitFor();
    await shot(page, '15-setup-5-done');
    await byTestId(page, 'setup-finish').click();
    await page.waitForURL((u) => new URL(u).pathname === '/');
  });

  await step('users: a viewer limited to one site, with a personal token', page, async () => {
    await page.goto(`${BASE}/users`);
    await byTestId(page, 'users-table').waitFor();
    await byTestId(page, 'new-user-email').fill(VIEWER_EMAIL);
    await byTestId(page, 'new-user-name').fill('Viewer of lab');
    await byTestId(page, 'new-user-role').selectOption('viewer');
    await byTestId(page, 'new-user-sites').fill('lab');
    await byTestId(page, 'new-user-password').fill(VIEWER_PW);
    await byTestId(page, 'user-create').click();
    await byTestId(page, 'user-created').waitFor();
    const row = page.locator(`[data-testid="user-row"][data-email="${VIEWER_EMAIL}"]`);
    await row.waitFor();
    assert((await row.getAttribute('data-role')) === 'viewer', 'the new user is a viewer');
    assert(((await row.textContent()) ?? '').includes('lab'), 'the row shows the site limit');
    await row.getByTestId('user-edit').click();
    await byTestId(page, 'user-token-name').fill('wallboard');
    await byTestId(page, 'user-token-create').click();
    const secret = ((await byTestId(page, 'user-token-secret').textContent()) ?? '').trim();
    assert(secret.startsWith('llms_'), `token shown once: ${secret}`);
    // the token acts as the viewer: reads their site, may not change anything
    const read = await fetch(`${BASE}/api/v1/series`, { headers: { Authorization: `Bearer ${secret}` } });
    assert(read.status === 200, `the personal token reads: ${read.status}`);
    const change = await fetch(`${BASE}/api/v1/silences`, { method: 'POST', headers: { Authorization: `Bearer ${secret}`, 'Content-Type': 'application/json' }, body: '{}' });
    assert(change.status === 403, `a viewer's token may not change: ${change.status}`);
    await byTestId(page, 'personal-token-row').first().waitFor();
    await shot(page, '16-users');
  });

  await step('audit log lists the changes with their actor, filters and exports', page, async () => {
    await page.goto(`${BASE}/audit`);
    await byTestId(page, 'audit-table').waitFor();
    const actions = await byTestId(page, 'audit-row').evaluateAll((els) => els.map((e) => e.getAttribute('data-action')));
    for (const a of ['user.create', 'token.create', 'silence.create', 'violation.ack', 'auth.login']) assert(actions.includes(a), `no ${a} in ${actions}`);
    const ack = page.locator('[data-testid="audit-row"][data-action="violation.ack"]').first();
    assert((await ack.getAttribute('data-actor')) === ADMIN_EMAIL, 'the acknowledgement is recorded as the signed-in admin');
    await shot(page, '17-audit');
    await byTestId(page, 'audit-action').selectOption('user.');
    await byTestId(page, 'audit-apply').click();
    await page.waitForURL(/action=user/);
    await byTestId(page, 'audit-table').waitFor();
    const filtered = await byTestId(page, 'audit-row').evaluateAll((els) => els.map((e) => e.getAttribute('data-action')));
    assert(filtered.length > 0 && filtered.every((a) => a.startsWith('user.')), `filter: ${filtered}`);
    const href = await byTestId(page, 'audit-csv').getAttribute('href');
    assert(href.includes('action=user.'), `CSV link keeps the filter: ${href}`);
    const csv = await (await page.request.get(`${BASE}${href}`)).text();
    assert(csv.startsWith('id,at,actor') && csv.includes(VIEWER_EMAIL), 'the CSV has the entries');
  });

  await step('account: personal token and password change', page, async () => {
    await page.goto(`${BASE}/account`);
    await byTestId(page, 'account-info').waitFor();
    await byTestId(page, 'personal-token-name').fill('ci');
    await byTestId(page, 'personal-token-create').click();
    const t = ((await byTestId(page, 'personal-token-secret').textContent()) ?? '').trim();
    assert(t.startsWith('llms_'), 'personal token shown once');
    const newPw = `changed password ${nonce}`;
    await byTestId(page, 'password-current').fill(adminPw);
    await byTestId(page, 'password-new').fill(newPw);
    await byTestId(page, 'password-repeat').fill(newPw);
    await byTestId(page, 'password-submit').click();
    await byTestId(page, 'password-changed').waitFor();
    adminPw = newPw;
    await shot(page, '18-account');
  });

  await step('a site-limited viewer: no admin pages, no change controls, only its site', page, async () => {
    await signOut(page);
    await signIn(page, VIEWER_EMAIL, VIEWER_PW);
    for (const nav of ['users', 'audit', 'setup']) assert((await byTestId(page, `nav-${nav}`).count()) === 0, `a viewer does not see ${nav}`);
    assert((await byTestId(page, 'user-role').textContent()) === 'viewer', 'role shown');
    await page.goto(`${BASE}/violations?site=`);
    await byTestId(page, 'violation-open').first().click();
    await byTestId(page, 'violation-readonly').waitFor();
    assert((await byTestId(page, 'violation-ack').count()) === 0, 'no acknowledge button for a viewer');
    await shot(page, '19-viewer-violation', false);
    await page.keyboard.press('Escape');
    await page.goto(`${BASE}/settings?tab=silences`);
    await byTestId(page, 'needs-editor').waitFor();
    assert((await byTestId(page, 'silence-form').count()) === 0, 'no silence form for a viewer');
    assert((await byTestId(page, 'tab-tokens').count()) === 0, 'no ingest tokens tab for a viewer');
    // the admin page itself says what is missing
    await page.goto(`${BASE}/users`);
    await byTestId(page, 'page-forbidden').waitFor();
    // every site the viewer can pick is theirs
    const sites = await byTestId(page, 'site-select').locator('option').evaluateAll((els) => els.map((e) => e.value).filter(Boolean));
    assert(sites.every((s) => s === 'lab'), `sites offered: ${sites}`);
    // a session that ended sends the browser to sign in, and back afterwards
    await context.clearCookies();
    await page.goto(`${BASE}/incidents?site=`);
    await page.waitForURL(/\/signin\?next=%2Fincidents/);
    await signIn(page, VIEWER_EMAIL, VIEWER_PW);
    assert(new URL(page.url()).pathname === '/incidents', `back at ${page.url()}`);
  });

  await step('dark theme screenshots', page, async () => {
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.goto(`${BASE}/?site=`);
    await byTestId(page, 'overview-grid').waitFor();
    await shot(page, '20-dark-overview');
    await byTestId(page, 'overview-cell').and(page.locator('[data-status="violation"]')).first().click();
    await page.locator('[data-testid="control-chart"][data-flagged-count]').waitFor();
    await shot(page, '21-dark-series');
    await page.goto(`${BASE}/violations?site=`);
    await byTestId(page, 'violation-open').first().click();
    await byTestId(page, 'rule-text').waitFor();
    await page.locator('[data-testid="violation-chart"] canvas, [data-testid="violation-chart-empty"]').first().waitFor();
    await shot(page, '22-dark-violation-modal', false);
    await page.emulateMedia({ colorScheme: 'light' });
  });

  await step('no script errors and no injected code ran', page, async () => {
    await xssInert(page);
    assert(pageErrors.length === 0, `page errors: ${pageErrors.join(' | ')}`);
  });
} finally {
  await browser.close();
  receiver.close();
}

fs.writeFileSync(path.join(SHOTS, 'e2e-results.txt'), results.join('\n') + '\n');
console.log(`screenshots in ${SHOTS}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
