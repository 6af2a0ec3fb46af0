// Your account: who you are, your password, your personal API tokens.

import { currentMe, get, loadMe, mutate, type PersonalToken } from '../api';
import { codeBlock, emptyState, field, h, mount, notice } from '../dom';
import { timeEl } from '../format';
import type { PageCtx } from '../page';
import { card, loading, pageHead, showError, withButton } from '../ui';

/** A table of personal tokens with a revoke button each. */
export function tokenTable(tokens: PersonalToken[], revoke: (t: PersonalToken, b: HTMLButtonElement) => Promise<void>): HTMLElement {
  if (!tokens.length) return emptyState('No personal tokens.', 'Create one below to use the API as this user (Authorization: Bearer …).', 'personal-tokens-empty');
  return h('div', { class: 'table-scroll' }, h('table', { class: 'table', testid: 'personal-tokens' },
    h('thead', null, h('tr', null, ...['ID', 'Name', 'Created', 'Status', ''].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, ...tokens.map((t) => {
      const b = h('button', { class: 'btn btn-small btn-danger', type: 'button', testid: 'personal-token-revoke', dataset: { id: t.id } }, 'Revoke');
      b.addEventListener('click', () => {
        if (window.confirm(`Revoke token ${t.name || t.id}? Scripts using it are refused at once.`)) void revoke(t, b);
      });
      return h('tr', { testid: 'personal-token-row', dataset: { id: t.id } },
        h('td', { class: 'mono' }, t.id), h('td', null, t.name || '—'), h('td', null, timeEl(t.created_at)),
        h('td', null, t.revoked_at ? h('span', { class: 'muted' }, 'revoked ', timeEl(t.revoked_at)) : h('span', { class: 'badge badge-active' }, 'active')),
        h('td', { class: 'row-actions' }, t.revoked_at ? null : b));
    }))));
}

/** The create-a-token form; `create` answers the token once. */
export function tokenForm(create: (name: string) => Promise<PersonalToken | undefined>, after: () => void, testid = 'personal-token'): HTMLElement {
  const name = h('input', { type: 'text', testid: `${testid}-name`, placeholder: 'e.g. grafana, laptop' });
  const errors = h('div');
  const shown = h('div', { testid: `${testid}-shown` });
  const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: `${testid}-create` }, 'Create token');
  const form = h('form', { class: 'stack', novalidate: true }, field('Name', name, 'To recognise it later.'), errors, h('div', { class: 'actions' }, submit), shown);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const t = await withButton(submit, errors, () => create(name.value.trim()));
    if (t?.token) {
      mount(shown, h('div', { class: 'secret-box' }, notice('warn', 'Copy this token now — it is shown only once.'), codeBlock(t.token, `${testid}-secret`)));
      name.value = '';
      after();
    }
  });
  return form;
}

export async function accountPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const me = currentMe() ?? (await loadMe());
  const u = me.user;
  view.append(pageHead('Your account', u ? `${u.email} · ${u.role}` : me.actor));
  if (!u) {
    view.append(notice('info', 'This browser is not signed in as a user.'));
    return;
  }
  const kv = (k: string, v: Node | string) => h('div', { class: 'kv-item' }, h('div', { class: 'kv-k' }, k), h('div', { class: 'kv-v' }, v));
  view.append(card('You', h('div', { class: 'kv-grid', testid: 'account-info' },
    kv('Email', u.email), kv('Name', u.name || '—'), kv('Role', u.role),
    kv('Sites', u.sites ? u.sites.join(', ') : 'all sites'),
    kv('Signs in with', [u.has_password ? 'password' : null, u.oidc ? 'single sign-on' : null].filter(Boolean).join(' and ') || '—'),
    kv('Last sign-in', timeEl(u.last_login_at)))));

  if (u.has_password) {
    const cur = h('input', { type: 'password', testid: 'password-current', autocomplete: 'current-password' });
    const next = h('input', { type: 'password', testid: 'password-new', autocomplete: 'new-password' });
    const again = h('input', { type: 'password', testid: 'password-repeat', autocomplete: 'new-password' });
    const msg = h('div', { 'aria-live': 'polite' });
    const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'password-submit' }, 'Change password');
    const form = h('form', { class: 'stack', novalidate: true, testid: 'password-form' },
      h('div', { class: 'form-grid' }, field('Current password', cur), field('New password', next, 'At least 12 characters.'), field('Repeat', again)),
      msg, h('div', { class: 'actions' }, submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (next.value !== again.value) return mount(msg, notice('error', 'The new passwords differ.', 'password-error'));
      const ok = await withButton(submit, msg, async () => {
        await mutate('POST', 'auth/password', { current: cur.value, new: next.value });
        return true;
      });
      if (ok) {
        cur.value = next.value = again.value = '';
        mount(msg, notice('ok', 'Password changed. Your other sessions have ended.', 'password-changed'));
      }
    });
    view.append(card('Password', form));
  }

  const listSlot = h('div', null, loading());
  const msg = h('div');
  const load = async () => {
    try {
      const tokens = await get<PersonalToken[]>('auth/tokens', undefined, ctx.signal);
      mount(listSlot, tokenTable(tokens, async (t, b) => {
        await withButton(b, msg, () => mutate('DELETE', `auth/tokens/${encodeURIComponent(t.id)}`));
        void load();
      }));
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(listSlot, e);
    }
  };
  view.append(card('Personal API tokens',
    h('p', { class: 'muted small' }, `A personal token acts as you (${u.role}${u.sites ? `, sites ${u.sites.join(', ')}` : ''}) from scripts and tools: send it as Authorization: Bearer …. It stops working when it is revoked or your account is disabled.`),
    msg, listSlot,
    tokenForm((name) => mutate<PersonalToken>('POST', 'auth/tokens', { name }), () => void load())));
  await load();
}
