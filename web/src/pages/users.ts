// Users (admins only): who may sign in, with which role and sites; their passwords and
// personal tokens. Every change here is in the audit log.

import { currentMe, get, mutate, type PersonalToken, type Role, type SiteInfo, type User } from '../api';
import { codeBlock, emptyState, field, h, mount, notice, select } from '../dom';
import { timeEl } from '../format';
import type { PageCtx } from '../page';
import { card, loading, pageHead, showError, withButton } from '../ui';
import { tokenForm, tokenTable } from './account';

const ROLES: Array<[Role, string]> = [
  ['viewer', 'viewer — reads'],
  ['editor', 'editor — also acknowledges, silences, re-baselines, sets rules'],
  ['admin', 'admin — also channels, routes, tokens, users, audit'],
];

function parseSites(text: string): string[] | null {
  const list = text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  return list.length ? list : null;
}

function secretOnce(slot: HTMLElement, what: string, secret: string, testid: string): void {
  mount(slot, h('div', { class: 'secret-box' }, notice('warn', `${what} — shown only once. Hand it over safely.`), codeBlock(secret, testid)));
  slot.scrollIntoView({ block: 'nearest' });
}

export async function usersPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  view.append(pageHead('Users', 'Who may sign in, with which role, for which sites. Sign-ins with single sign-on create users too.'));
  const listSlot = h('div', null, loading());
  const msg = h('div', { 'aria-live': 'polite' });
  const shown = h('div', { testid: 'user-secret-slot' });
  const detail = h('div', { testid: 'user-detail-slot' });
  const sites = await get<SiteInfo[]>('sites', undefined, ctx.signal).catch(() => [] as SiteInfo[]);
  const siteHint = sites.length ? `Known sites: ${sites.map((s) => s.name).join(', ')}. Empty: every site.` : 'Empty: every site.';

  const load = async () => {
    try {
      const users = await get<User[]>('users', undefined, ctx.signal);
      if (!users.length) {
        mount(listSlot, emptyState('No users yet.', 'Create the first one below.', 'users-empty'));
        return;
      }
      mount(listSlot, h('div', { class: 'table-scroll' }, h('table', { class: 'table', testid: 'users-table' },
        h('thead', null, h('tr', null, ...['Email', 'Name', 'Role', 'Sites', 'Signs in with', 'Last sign-in', 'Status', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', null, ...users.map((u) => userRow(u))))));
    } catch (e) {
      if ((e as Error).name !== 'AbortError') showError(listSlot, e);
    }
  };

  const userRow = (u: User): HTMLElement => {
    const self = currentMe()?.user?.id === u.id;
    const edit = h('button', { class: 'btn btn-small', type: 'button', testid: 'user-edit', dataset: { email: u.email } }, 'Edit');
    edit.addEventListener('click', () => void openDetail(u));
    const toggle = h('button', { class: `btn btn-small ${u.disabled ? '' : 'btn-danger'}`, type: 'button', testid: u.disabled ? 'user-enable' : 'user-disable', dataset: { email: u.email }, disabled: self }, u.disabled ? 'Enable' : 'Disable');
    toggle.addEventListener('click', async () => {
      if (!u.disabled && !window.confirm(`Disable ${u.email}? Their sessions end and their tokens stop working.`)) return;
      const r = await withButton(toggle, msg, () => mutate<User>('PATCH', `users/${encodeURIComponent(u.id)}`, { disabled: !u.disabled }));
      if (r) {
        mount(msg, notice('ok', `${u.email} ${r.disabled ? 'disabled' : 'enabled'}.`, 'user-changed'));
        void load();
      }
    });
    return h('tr', { testid: 'user-row', dataset: { email: u.email, role: u.role, disabled: String(u.disabled) } },
      h('td', null, u.email, self ? h('span', { class: 'muted small' }, ' (you)') : null),
      h('td', null, u.name || '—'),
      h('td', null, h('span', { class: `badge badge-role-${u.role}` }, u.role)),
      h('td', null, u.sites ? u.sites.join(', ') : h('span', { class: 'muted' }, 'all')),
      h('td', null, [u.has_password ? 'password' : null, u.oidc ? 'SSO' : null].filter(Boolean).join(', ') || '—'),
      h('td', null, timeEl(u.last_login_at)),
      h('td', null, u.disabled ? h('span', { class: 'badge badge-expired' }, 'disabled') : h('span', { class: 'badge badge-active' }, 'active')),
      h('td', { class: 'row-actions' }, edit, toggle));
  };

  const openDetail = async (u: User) => {
    const role = select({ testid: 'user-edit-role' }, ROLES, u.role);
    const siteIn = h('input', { type: 'text', testid: 'user-edit-sites', value: u.sites?.join(', ') ?? '', placeholder: 'all sites' });
    const name = h('input', { type: 'text', testid: 'user-edit-name', value: u.name });
    const errors = h('div');
    const save = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'user-edit-save' }, 'Save');
    const form = h('form', { class: 'stack', novalidate: true },
      h('div', { class: 'form-grid' }, field('Role', role), field('Sites', siteIn, siteHint), field('Name', name)),
      errors, h('div', { class: 'actions' }, save));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const r = await withButton(save, errors, () => mutate<User>('PATCH', `users/${encodeURIComponent(u.id)}`, { role: role.value, sites: parseSites(siteIn.value), name: name.value.trim() }));
      if (r) {
        mount(msg, notice('ok', `${r.email} saved.`, 'user-changed'));
        void load();
      }
    });
    const pwSlot = h('div');
    const pwBtn = h('button', { class: 'btn', type: 'button', testid: 'user-password-reset' }, 'Set a new generated password');
    pwBtn.addEventListener('click', async () => {
      if (!window.confirm(`Give ${u.email} a new password? Their sessions end.`)) return;
      const r = await withButton(pwBtn, pwSlot, () => mutate<{ password?: string }>('POST', `users/${encodeURIComponent(u.id)}/password`));
      if (r?.password) secretOnce(pwSlot, `The new password of ${u.email}`, r.password, 'user-password-secret');
    });
    const tokSlot = h('div', null, loading());
    const tokMsg = h('div');
    const loadTokens = async () => {
      try {
        const tokens = await get<PersonalToken[]>(`users/${encodeURIComponent(u.id)}/tokens`, undefined, ctx.signal);
        mount(tokSlot, tokenTable(tokens, async (t, b) => {
          await withButton(b, tokMsg, () => mutate('DELETE', `users/${encodeURIComponent(u.id)}/tokens/${encodeURIComponent(t.id)}`));
          void loadTokens();
        }));
      } catch (e) {
        if ((e as Error).name !== 'AbortError') showError(tokSlot, e);
      }
    };
    mount(detail, card(`Edit ${u.email}`, form,
      h('h3', null, 'Password'), pwBtn, pwSlot,
      h('h3', null, 'Personal tokens'), tokMsg, tokSlot,
      tokenForm((n) => mutate<PersonalToken>('POST', `users/${encodeURIComponent(u.id)}/tokens`, { name: n }), () => void loadTokens(), 'user-token')));
    detail.scrollIntoView({ block: 'start' });
    await loadTokens();
  };

  // create
  const email = h('input', { type: 'email', testid: 'new-user-email', placeholder: 'name@example.com', autocomplete: 'off' });
  const name = h('input', { type: 'text', testid: 'new-user-name', placeholder: 'optional' });
  const role = select({ testid: 'new-user-role' }, ROLES, 'viewer');
  const siteIn = h('input', { type: 'text', testid: 'new-user-sites', placeholder: 'all sites', value: '' });
  const pw = h('input', { type: 'password', testid: 'new-user-password', placeholder: 'empty: generate one', autocomplete: 'new-password' });
  const errors = h('div');
  const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'user-create' }, 'Create user');
  const form = h('form', { class: 'stack', novalidate: true, testid: 'user-form' },
    h('div', { class: 'form-grid' }, field('Email', email), field('Name', name), field('Role', role), field('Sites', siteIn, siteHint), field('Password', pw, 'At least 12 characters; empty: a generated one is shown once.')),
    errors, h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!email.value.trim()) return mount(errors, notice('error', 'Email: enter the address the user signs in with.', 'user-validation'));
    const body: Record<string, unknown> = { email: email.value.trim(), role: role.value, sites: parseSites(siteIn.value), name: name.value.trim() };
    if (pw.value) body.password = pw.value;
    const u = await withButton(submit, errors, () => mutate<User>('POST', 'users', body));
    if (u) {
      mount(msg, notice('ok', `${u.email} created (${u.role}).`, 'user-created'));
      if (u.password) secretOnce(shown, `The password of ${u.email}`, u.password, 'user-created-password');
      else shown.replaceChildren();
      email.value = name.value = pw.value = siteIn.value = '';
      void load();
    }
  });
  view.append(card('Users', msg, listSlot, shown), detail, card('Create a user', form));
  await load();
}
