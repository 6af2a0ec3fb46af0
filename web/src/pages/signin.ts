// The sign-in page: email and password, and "Sign in with …" when single sign-on is set up.
// After signing in the browser goes back where it was (`next`, a path of this dashboard only).
// Errors from the identity provider arrive as `?error=`.

import { ApiError, currentMe, errorText, loadMe } from '../api';
import { h, mount, notice } from '../dom';
import { navigate } from '../router';
import type { PageCtx } from '../page';

/** A path of this dashboard to go to after signing in (never another origin). */
export function safeNext(p: string | null): string {
  if (!p || !p.startsWith('/') || p.startsWith('//') || p.includes('\\') || p.startsWith('/signin')) return '/';
  return p;
}

export async function signinPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const me = currentMe() ?? (await loadMe());
  const next = safeNext(ctx.params.get('next'));
  if (me.user) {
    navigate(next, true);
    return;
  }
  const email = h('input', { type: 'email', id: 'signin-email', testid: 'signin-email', autocomplete: 'username', required: true, spellcheck: 'false' });
  const password = h('input', { type: 'password', id: 'signin-password', testid: 'signin-password', autocomplete: 'current-password', required: true });
  const msg = h('div', { testid: 'signin-message', 'aria-live': 'polite' });
  const error = ctx.params.get('error');
  const reason = ctx.params.get('reason');
  if (error) mount(msg, notice('error', error, 'signin-error'));
  else if (reason && /ended|revoked|disabled/.test(reason)) mount(msg, notice('info', reason, 'signin-reason'));
  const submit = h('button', { class: 'btn btn-primary btn-block', type: 'submit', testid: 'signin-submit' }, 'Sign in');
  const form = h('form', { class: 'stack', testid: 'signin-form', novalidate: true },
    h('label', { class: 'field', for: 'signin-email' }, h('span', { class: 'field-label' }, 'Email'), email),
    h('label', { class: 'field', for: 'signin-password' }, h('span', { class: 'field-label' }, 'Password'), password),
    msg,
    submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!email.value.trim() || !password.value) {
      mount(msg, notice('error', 'Enter your email and password.', 'signin-error'));
      (email.value.trim() ? password : email).focus();
      return;
    }
    submit.disabled = true;
    msg.replaceChildren();
    try {
      const res = await fetch('/api/v1/auth/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ email: email.value.trim(), password: password.value }),
      });
      if (!res.ok) {
        const body = (await res.json().catch(() => ({}))) as { error?: string };
        const wait = res.headers.get('retry-after');
        const text = res.status === 429 && wait
          ? `Too many failed sign-ins. Try again in ${Math.ceil(Number(wait) / 60)} min.`
          : body.error ?? `${res.status} ${res.statusText}`;
        throw new ApiError(res.status, text);
      }
      password.value = '';
      await loadMe();
      navigate(next, true);
    } catch (e) {
      mount(msg, notice('error', errorText(e), 'signin-error'));
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  const sso = me.methods.oidc
    ? h('div', { class: 'stack' },
      h('div', { class: 'or' }, h('span', null, 'or')),
      h('a', {
        class: 'btn btn-block', testid: 'signin-oidc',
        href: `${me.methods.oidc.start}?${new URLSearchParams({ return_to: next }).toString()}`,
      }, `Sign in with ${me.methods.oidc.name}`))
    : null;
  view.append(h('div', { class: 'signin', testid: 'signin-page' },
    h('section', { class: 'card signin-card' },
      h('h1', null, 'Sign in to LLMscope'),
      h('p', { class: 'muted small' }, 'Control charts for your models’ latency.'),
      form,
      sso,
      h('p', { class: 'muted small signin-help' }, 'No account yet? An administrator creates one on the Users page, or on the collector’s host: ',
        h('code', null, 'llmscope-collector user create you@example.com --role viewer'), '.')),
  ));
  email.focus();
}
