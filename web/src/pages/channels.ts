// Alert channel form and test send, shared by Settings → Channels and the setup wizard.

import { mutate, type Channel, type TestResult } from '../api';
import { field, h, mount, notice } from '../dom';
import { withButton } from '../ui';

export const CHANNEL_KINDS: Array<[string, string]> = [
  ['webhook', 'Webhook (signed JSON)'],
  ['slack', 'Slack incoming webhook'],
  ['pagerduty', 'PagerDuty Events v2'],
  ['email', 'Email (SMTP)'],
];

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function validUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/** The form that creates a channel. Calls onCreated with the stored channel. */
export function channelForm(opts: { idPrefix: string; onCreated: (c: Channel) => void; submitLabel?: string; defaultName?: string }): HTMLFormElement {
  const p = opts.idPrefix;
  const name = h('input', { type: 'text', testid: `${p}-name`, placeholder: 'e.g. oncall', value: opts.defaultName ?? '', autocomplete: 'off' });
  const kind = h('select', { testid: `${p}-kind` }, ...CHANNEL_KINDS.map(([v, l]) => h('option', { value: v }, l)));
  const urlIn = h('input', { type: 'url', testid: `${p}-url`, placeholder: 'https://…', autocomplete: 'off' });
  const secret = h('input', { type: 'password', testid: `${p}-secret`, autocomplete: 'new-password' });
  const host = h('input', { type: 'text', testid: `${p}-smtp-host`, placeholder: 'smtp.example.com' });
  const port = h('input', { type: 'number', testid: `${p}-smtp-port`, value: '587', min: '1', max: '65535' });
  const tls = h('select', { testid: `${p}-smtp-tls` }, h('option', { value: 'starttls' }, 'STARTTLS'), h('option', { value: 'implicit' }, 'Implicit TLS'), h('option', { value: 'none' }, 'None'));
  const user = h('input', { type: 'text', testid: `${p}-smtp-user`, autocomplete: 'off' });
  const from = h('input', { type: 'email', testid: `${p}-smtp-from`, placeholder: 'llmscope@example.com' });
  const to = h('input', { type: 'text', testid: `${p}-smtp-to`, placeholder: 'oncall@example.com, team@example.com' });
  const errors = h('div', { testid: `${p}-errors` });
  const urlField = field('URL', urlIn);
  const secretHint = h('span', { class: 'field-hint' });
  const secretField = h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Secret'), secret, secretHint);
  const emailFields = h('div', { class: 'form-grid' },
    field('SMTP host', host), field('Port', port), field('TLS', tls), field('Username (optional)', user), field('From', from), field('To (comma-separated)', to));

  const sync = () => {
    const k = kind.value;
    urlField.hidden = k === 'email';
    emailFields.hidden = k !== 'email';
    secretField.hidden = k === 'slack';
    urlIn.placeholder = k === 'slack' ? 'https://hooks.slack.com/services/…' : k === 'pagerduty' ? 'optional: Events API URL' : 'https://…';
    secretHint.textContent =
      k === 'webhook' ? 'HMAC key: each request carries a SHA-256 signature made with it (optional).'
        : k === 'pagerduty' ? 'The integration’s routing key (required).'
          : k === 'email' ? 'SMTP password (optional).' : '';
    urlField.querySelector('.field-label')!.textContent = k === 'pagerduty' ? 'Events API URL (optional)' : 'URL';
  };
  kind.addEventListener('change', sync);
  sync();

  const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: `${p}-create` }, opts.submitLabel ?? 'Create channel');
  const form = h('form', { class: 'stack', testid: `${p}-form`, novalidate: true },
    h('div', { class: 'form-grid form-grid-2' }, field('Name', name, 'Letters, digits, dot, dash or underscore.'), field('Kind', kind)),
    urlField, emailFields, secretField, errors, h('div', { class: 'actions' }, submit));

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const problems: string[] = [];
    const n = name.value.trim();
    const k = kind.value;
    if (!n) problems.push('Name: give the channel a name.');
    else if (!NAME_RE.test(n)) problems.push('Name: use letters, digits, dot, dash or underscore (at most 64), starting with a letter or digit.');
    let config: Record<string, unknown> = {};
    const u = urlIn.value.trim();
    if (k === 'webhook' || k === 'slack') {
      if (!u) problems.push('URL: enter the address alerts are posted to.');
      else if (!validUrl(u)) problems.push('URL: must start with http:// or https://.');
      config = { url: u };
    } else if (k === 'pagerduty') {
      if (u && !validUrl(u)) problems.push('URL: must start with http:// or https://, or be left empty.');
      if (!secret.value.trim()) problems.push('Secret: PagerDuty needs the integration’s routing key.');
      config = u ? { url: u } : {};
    } else {
      const recipients = to.value.split(/[,;\s]+/).map((x) => x.trim()).filter(Boolean);
      const portN = Number(port.value);
      if (!host.value.trim()) problems.push('SMTP host: enter the mail server’s host name.');
      if (!Number.isInteger(portN) || portN < 1 || portN > 65535) problems.push('Port: a number from 1 to 65535.');
      if (!from.value.trim().includes('@')) problems.push('From: an email address such as llmscope@example.com.');
      if (!recipients.length) problems.push('To: at least one recipient address.');
      else if (recipients.some((r) => !r.includes('@'))) problems.push('To: every recipient must be an email address.');
      config = { host: host.value.trim(), port: portN, tls: tls.value, from: from.value.trim(), to: recipients, ...(user.value.trim() ? { username: user.value.trim() } : {}) };
    }
    if (problems.length) {
      mount(errors, h('div', { class: 'notice notice-error', role: 'alert', testid: `${p}-validation` }, h('strong', null, 'Please fix:'), h('ul', null, ...problems.map((x) => h('li', null, x)))));
      return;
    }
    const body: Record<string, unknown> = { name: n, kind: k, config };
    if (k !== 'slack' && secret.value.trim()) body.secret = secret.value.trim();
    const created = await withButton(submit, errors, () => mutate<Channel>('POST', 'channels', body));
    if (created) {
      secret.value = '';
      opts.onCreated(created);
    }
  });
  return form;
}

/** Sends a test alert through a channel and shows the receiver's answer in `slot`. */
export async function sendTest(name: string, btn: HTMLButtonElement, slot: HTMLElement, testid = 'channel-test-result'): Promise<TestResult | undefined> {
  mount(slot, h('div', { class: 'muted small' }, `Sending a test alert through ${name}…`));
  const r = await withButton(btn, slot, () => mutate<TestResult>('POST', `channels/${encodeURIComponent(name)}/test`, {}));
  if (!r) return undefined;
  mount(slot, testResult(name, r, testid));
  return r;
}

export function testResult(name: string, r: TestResult, testid: string): HTMLElement {
  return h('div', { class: `test-result ${r.ok ? 'test-ok' : 'test-fail'}`, testid, dataset: { ok: String(r.ok), status: r.status ?? '' } },
    h('div', { class: 'test-line' },
      h('strong', null, r.ok ? `Delivered through ${name}` : `Not delivered through ${name}`),
      r.status !== null && r.status !== undefined ? h('span', { class: 'badge' }, `HTTP ${r.status}`) : null),
    r.error ? notice('error', r.error) : null,
    h('div', { class: 'small muted' }, 'The receiver answered:'),
    h('pre', { class: 'code response', testid: `${testid}-response` }, r.response === null || r.response === '' ? '(empty answer)' : r.response));
}
