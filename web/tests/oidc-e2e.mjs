#!/usr/bin/env node
// Single sign-on end to end in headless Chromium: the dashboard's "Sign in with …" button, a
// real OpenID provider's login and consent pages (tests/oidc-provider.mjs, run by the test
// driver tests/tests/oidc.rs), back to the collector signed in with the role and sites the
// provider's claims map to.
//
//   LLMSCOPE_URL=http://127.0.0.1:8080 LLMSCOPE_ADMIN_TOKEN=llms_… node tests/oidc-e2e.mjs
//
// The collector is configured with role_map llmscope-admins → admin, eu-team → viewer,
// sites_claim = "sites", strict = true. Ends with "N passed, N failed".

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const BASE = (process.env.LLMSCOPE_URL ?? '').replace(/\/+$/, '');
const ADMIN = process.env.LLMSCOPE_ADMIN_TOKEN ?? '';
const SHOTS = path.resolve(process.env.LLMSCOPE_SCREENSHOTS ?? 'artifacts/screenshots');
const CHROMIUM = process.env.LLMSCOPE_CHROMIUM ?? '/usr/bin/chromium';
const T = 20_000;
if (!BASE || !ADMIN) {
  console.error('LLMSCOPE_URL and LLMSCOPE_ADMIN_TOKEN are required');
  process.exit(2);
}
fs.mkdirSync(SHOTS, { recursive: true });

let passed = 0;
let failed = 0;
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const byTestId = (page, id) => page.locator(`[data-testid="${id}"]`);

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

/** A fresh browser (no provider session, no collector cookie) on `path` of the dashboard. */
async function fresh(p) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto(BASE + p);
  return { ctx, page };
}

async function step(name, page, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.stack ?? e.message}`);
    if (page) {
      await page.screenshot({ path: path.join(SHOTS, `FAILED-oidc-${name.replace(/[^a-z0-9]+/gi, '-')}.png`) }).catch(() => {});
      console.log(`     at ${page.url()}`);
    }
  }
}

/** From the sign-in page through the provider's login (any password) and consent pages. */
async function signInWithProvider(page, login) {
  let auth = null;
  const seen = (req) => {
    const u = new URL(req.url());
    if (!req.url().startsWith(BASE) && u.pathname === '/auth' && !auth) auth = u;
  };
  page.on('request', seen);
  await byTestId(page, 'signin-oidc').waitFor({ timeout: T });
  await byTestId(page, 'signin-oidc').click();
  // the provider's own pages, on its own origin
  await page.locator('input[name="login"]').waitFor({ timeout: T });
  assert(!page.url().startsWith(BASE), `expected the provider's login page, at ${page.url()}`);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any-password');
  await page.locator('button[type="submit"]').click();
  // consent ("Authorize"), then the provider redirects to the collector's callback
  const consent = page.locator('form[autocomplete="off"] button[type="submit"], button:has-text("Continue")');
  // (a provider that remembers the consent skips that page: whichever comes first; the loser
  // of the race is settled here so it cannot fail the run later)
  const consented = consent.first().waitFor({ timeout: T }).then(() => consent.first().click()).catch(() => {});
  const back = page.waitForURL((u) => u.toString().startsWith(BASE), { timeout: T }).catch(() => {});
  await Promise.race([consented, back]);
  await page.waitForURL((u) => u.toString().startsWith(BASE), { timeout: T });
  page.off('request', seen);
  assert(auth, 'the browser went through the provider\'s authorization endpoint');
  return auth;
}

async function me(page) {
  return page.evaluate(async () => (await fetch('/api/v1/auth/me', { credentials: 'same-origin' })).json());
}

// ---- alice: mapped to admin, lands where she started, every site
{
  const { ctx, page } = await fresh('/violations');
  await step('alice signs in with the provider and lands on the page she asked for as admin', page, async () => {
    await page.waitForURL(/\/signin\?/, { timeout: T });
    const auth = await signInWithProvider(page, 'alice');
    // the authorization request: code flow with PKCE (S256), state and nonce
    const q = auth.searchParams;
    assert(q.get('response_type') === 'code', `response_type: ${q.get('response_type')}`);
    assert(q.get('code_challenge_method') === 'S256' && (q.get('code_challenge') ?? '').length >= 43, `PKCE: ${auth}`);
    assert((q.get('state') ?? '').length >= 16 && (q.get('nonce') ?? '').length >= 16, `state and nonce: ${auth}`);
    assert((q.get('scope') ?? '').split(' ').includes('openid') && q.get('scope').includes('groups'), `scope: ${q.get('scope')}`);
    await page.waitForURL((u) => new URL(u).pathname === '/violations', { timeout: T });
    await byTestId(page, 'user-role').waitFor({ timeout: T });
    assert((await byTestId(page, 'user-role').textContent()) === 'admin', 'role badge should read admin');
    const m = await me(page);
    assert(m.user?.email === 'alice@example.com', `me: ${JSON.stringify(m)}`);
    assert(m.user.role === 'admin' && m.user.sites == null && m.user.oidc === true, `me: ${JSON.stringify(m.user)}`);
    assert(m.user.name === 'Alice Admin', `name from the profile claim: ${m.user.name}`);
    await byTestId(page, 'nav-users').waitFor({ timeout: T });
    const cookies = await ctx.cookies(BASE);
    const session = cookies.find((c) => c.httpOnly && c.sameSite === 'Lax' && c.name.startsWith('llmscope'));
    assert(session, `an HttpOnly SameSite=Lax session cookie: ${JSON.stringify(cookies.map((c) => c.name))}`);
    await page.screenshot({ path: path.join(SHOTS, '30-oidc-alice-signed-in.png') });
  });
  await step('alice signs out and is back at the sign-in page with the SSO button', page, async () => {
    await byTestId(page, 'user-menu-button').click();
    await byTestId(page, 'user-signout').click();
    await page.waitForURL(/\/signin/, { timeout: T });
    await byTestId(page, 'signin-oidc').waitFor({ timeout: T });
    const label = await byTestId(page, 'signin-oidc').textContent();
    assert(label === 'Sign in with Example IdP', `button label: ${label}`);
    const m = await me(page);
    assert(!m.user, `signed out: ${JSON.stringify(m)}`);
    await page.screenshot({ path: path.join(SHOTS, '31-oidc-signin-button.png') });
  });
  await ctx.close();
}

// ---- bob: viewer limited to the site named by the sites claim
{
  const { ctx, page } = await fresh('/');
  await step('bob signs in as a viewer limited to site eu', page, async () => {
    await page.waitForURL(/\/signin/, { timeout: T });
    await signInWithProvider(page, 'bob');
    await byTestId(page, 'user-role').waitFor({ timeout: T });
    const m = await me(page);
    assert(m.user?.email === 'bob@example.com' && m.user.role === 'viewer', `me: ${JSON.stringify(m.user)}`);
    assert(JSON.stringify(m.user.sites) === '["eu"]', `sites: ${JSON.stringify(m.user.sites)}`);
    assert(await byTestId(page, 'nav-users').count() === 0, 'a viewer has no Users page');
    assert(await byTestId(page, 'nav-audit').count() === 0, 'a viewer has no Audit page');
    const sites = await page.evaluate(async () => (await fetch('/api/v1/sites')).json());
    const names = sites.map((s) => s.name);
    assert(!names.includes('us'), `bob sees only eu: ${JSON.stringify(names)}`);
    const series = await page.evaluate(async () => (await fetch('/api/v1/series')).json());
    assert(series.length > 0 && series.every((s) => s.site === 'eu'), `series of eu only: ${JSON.stringify(series.map((s) => s.site))}`);
    await page.screenshot({ path: path.join(SHOTS, '32-oidc-bob-viewer.png') });
  });
  await ctx.close();
}

// ---- carol: no mapped group and strict mode: no access, no account
{
  const { ctx, page } = await fresh('/');
  await step('carol (no mapped group, strict) is refused with a clear message', page, async () => {
    await page.waitForURL(/\/signin/, { timeout: T });
    await signInWithProvider(page, 'carol');
    await page.waitForURL(/\/signin\?/, { timeout: T });
    await byTestId(page, 'signin-error').waitFor({ timeout: T });
    const text = await byTestId(page, 'signin-error').textContent();
    assert(/groups/.test(text) && /role/.test(text), `error names the claim and the missing role: ${text}`);
    const m = await me(page);
    assert(!m.user, `carol is not signed in: ${JSON.stringify(m)}`);
    await page.screenshot({ path: path.join(SHOTS, '33-oidc-carol-refused.png') });
  });
  await ctx.close();
}

// ---- a forged callback (state never issued) is refused
{
  const { ctx, page } = await fresh('/api/v1/auth/oidc/callback?code=forged&state=never-issued');
  await step('a callback with a state this collector never issued is refused', page, async () => {
    await page.waitForURL(/\/signin\?/, { timeout: T });
    await byTestId(page, 'signin-error').waitFor({ timeout: T });
    const text = await byTestId(page, 'signin-error').textContent();
    assert(/not started here/.test(text), `error: ${text}`);
    const m = await me(page);
    assert(!m.user, 'not signed in');
  });
  await ctx.close();
}

// ---- bob disabled by an admin: the provider still signs him in, the collector does not
{
  const users = await (await fetch(`${BASE}/api/v1/users`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
  const bob = (users.items ?? users).find((u) => u.email === 'bob@example.com');
  const { ctx, page } = await fresh('/');
  await step('a disabled user cannot sign in with the provider', page, async () => {
    assert(bob, `bob was created on first sign-in: ${JSON.stringify(users)}`);
    const r = await fetch(`${BASE}/api/v1/users/${bob.id}`, {
      method: 'PATCH',
      headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ disabled: true }),
    });
    assert(r.ok, `disable: ${r.status} ${await r.text()}`);
    await page.waitForURL(/\/signin/, { timeout: T });
    await signInWithProvider(page, 'bob');
    await page.waitForURL(/\/signin\?/, { timeout: T });
    await byTestId(page, 'signin-error').waitFor({ timeout: T });
    const text = await byTestId(page, 'signin-error').textContent();
    assert(/disabled/.test(text), `error: ${text}`);
    assert(!(await me(page)).user, 'not signed in');
  });
  await ctx.close();
}

await browser.close();
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
