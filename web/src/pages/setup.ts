import { ApiError, get, mutate, type Channel, type SeriesInfo, type Setup } from '../api';
import { codeBlock, field, h, mount, notice } from '../dom';
import { href, link } from '../router';
import type { PageCtx } from '../page';
import { loading, pageHead, showError, withButton } from '../ui';
import { channelForm, sendTest } from './channels';

const SITE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** The collector's gRPC address as an agent should dial it (a wildcard bind becomes this page's host). */
export function agentAddress(grpc: string): string {
  const m = /^(.*):(\d+)$/.exec(grpc.trim());
  let host = m ? m[1]! : grpc.trim();
  const port = m ? m[2]! : '7070';
  if (!host || host === '0.0.0.0' || host === '[::]' || host === '::') host = location.hostname || 'localhost';
  return `${host}:${port}`;
}

/** The environment of an application instrumented with OpenTelemetry, exporting to this collector. */
export function otelCommands(o: { token: string; endpoint: string }): string {
  return [
    '# an application instrumented with OpenTelemetry GenAI spans and metrics (e.g. opentelemetry-instrumentation-openai-v2)',
    `export OTEL_EXPORTER_OTLP_ENDPOINT=http://${o.endpoint}`,
    'export OTEL_EXPORTER_OTLP_PROTOCOL=grpc',
    `export OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20${o.token}"`,
    'export OTEL_SERVICE_NAME=my-llm-app',
    'export OTEL_TRACES_EXPORTER=otlp OTEL_METRICS_EXPORTER=otlp OTEL_LOGS_EXPORTER=none',
    'export OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta',
    '# Python: pip install opentelemetry-distro opentelemetry-exporter-otlp opentelemetry-instrumentation-openai-v2',
    'opentelemetry-instrument python app.py',
  ].join('\n');
}

export function installCommands(o: { site: string; token: string; addr: string; version: string }): { binary: string; docker: string; helm: string } {
  const collector = `http://${o.addr}`;
  const tag = o.version && /^v?\d+\.\d+\.\d+$/.test(o.version) ? o.version.replace(/^v/, '') : 'latest';
  return {
    binary: [
      '# on each inference host, with llmscope-agent on the PATH',
      'sudo install -d -m 700 /etc/llmscope /var/lib/llmscope-agent',
      `echo '${o.token}' | sudo tee /etc/llmscope/agent-token >/dev/null`,
      'sudo chmod 600 /etc/llmscope/agent-token',
      'sudo llmscope-agent \\',
      `  --collector ${collector} \\`,
      '  --token-file /etc/llmscope/agent-token \\',
      `  --site ${o.site} \\`,
      '  --data-dir /var/lib/llmscope-agent',
    ].join('\n'),
    docker: [
      'docker run -d --name llmscope-agent --restart unless-stopped \\',
      '  --gpus all --network host \\',
      `  -e LLMSCOPE_COLLECTOR=${collector} \\`,
      `  -e LLMSCOPE_TOKEN='${o.token}' \\`,
      `  -e LLMSCOPE_SITE=${o.site} \\`,
      '  -v llmscope-agent:/var/lib/llmscope-agent \\',
      `  llmscope/agent:${tag}`,
    ].join('\n'),
    helm: [
      '# agents only (DaemonSet on the GPU nodes), pointing at this collector',
      'kubectl create namespace llmscope',
      'kubectl -n llmscope create secret generic llmscope-agent-token \\',
      `  --from-literal=token='${o.token}'`,
      'helm install llmscope-agent ./helm/llmscope -n llmscope \\',
      '  --set collector.enabled=false --set postgresql.enabled=false \\',
      `  --set agent.site=${o.site} \\`,
      `  --set agent.collectorUrl=${collector} \\`,
      '  --set agent.token.existingSecret=llmscope-agent-token',
    ].join('\n'),
  };
}

const STEPS = ['Site', 'Ingest token', 'Install the agent', 'Alert channel', 'Done'];

export async function setupPage(view: HTMLElement, ctx: PageCtx): Promise<void> {
  const body = h('div', { class: 'card wizard-body' }, loading());
  const steps = h('ol', { class: 'steps', testid: 'setup-steps' });
  view.append(pageHead('Set up LLMscope', 'Five steps: name the site, create a token, start an agent, choose where alerts go.'), steps, body);

  let setup: Setup;
  try {
    setup = await get<Setup>('setup', undefined, ctx.signal);
  } catch (e) {
    if ((e as Error).name !== 'AbortError') showError(body, e);
    return;
  }
  const state = { step: 0, site: ctx.site || '', token: '', channel: '' as string };

  const go = (i: number) => {
    state.step = i;
    render();
    body.querySelector<HTMLElement>('input, button')?.focus();
  };

  const render = () => {
    mount(steps, ...STEPS.map((s, i) => h('li', { class: i === state.step ? 'current' : i < state.step ? 'done' : '', testid: `setup-step-${i + 1}`, 'aria-current': i === state.step ? 'step' : undefined },
      h('span', { class: 'step-n' }, i < state.step ? '✓' : String(i + 1)), h('span', null, s))));
    body.dataset.step = String(state.step + 1);
    [siteStep, tokenStep, installStep, channelStep, doneStep][state.step]!();
  };

  const nav = (back: boolean, next?: HTMLElement | null) =>
    h('div', { class: 'actions wizard-nav' },
      back ? h('button', { class: 'btn btn-ghost', type: 'button', testid: 'setup-back', on: { click: () => go(state.step - 1) } }, '← Back') : null,
      next ?? null);

  function siteStep(): void {
    const input = h('input', { type: 'text', testid: 'setup-site-name', value: state.site, placeholder: 'e.g. eu-west or lab', autocomplete: 'off', 'aria-describedby': 'site-hint' });
    const errors = h('div', { testid: 'setup-site-errors' });
    const submit = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'setup-site-submit' }, 'Create site →');
    const form = h('form', { class: 'stack', novalidate: true },
      h('h2', null, 'Name this site'),
      h('p', { class: 'muted' }, 'A site is a group of inference hosts — a data centre, a region, a lab. Control charts, alerts and tokens are organised by site.'),
      h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Site name'), input,
        h('span', { class: 'field-hint', id: 'site-hint' }, 'Letters, digits, dot, dash or underscore; up to 64 characters.')),
      errors, nav(false, submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const name = input.value.trim();
      if (!name) return mount(errors, notice('error', 'Site name: enter a name, e.g. eu-west.', 'setup-validation'));
      if (!SITE_RE.test(name)) return mount(errors, notice('error', `Site name: “${name}” has characters that are not allowed — use letters, digits, dot, dash or underscore, starting with a letter or digit.`, 'setup-validation'));
      const res = await withButton(submit, errors, async () => {
        try {
          await mutate('POST', 'sites', { name });
          return 'created';
        } catch (e) {
          if (e instanceof ApiError && e.status === 409) return 'exists';
          throw e;
        }
      });
      if (!res) return;
      state.site = name;
      document.dispatchEvent(new CustomEvent('llmscope:sites'));
      go(1);
      if (res === 'exists') body.prepend(notice('info', `Site ${name} already exists — continuing with it.`, 'setup-site-exists'));
    });
    mount(body, form);
  }

  function tokenStep(): void {
    const name = h('input', { type: 'text', testid: 'setup-token-name', value: `agents-${state.site}`, autocomplete: 'off' });
    const errors = h('div');
    const shown = h('div');
    const create = h('button', { class: 'btn btn-primary', type: 'submit', testid: 'setup-token-create' }, 'Create ingest token');
    const next = h('button', { class: 'btn btn-primary', type: 'button', testid: 'setup-next', disabled: !state.token, on: { click: () => go(2) } }, 'Next: install →');
    const showToken = () => mount(shown, h('div', { class: 'secret-box' }, notice('warn', 'Copy this token now — it is shown only once. The commands on the next step already contain it.'), codeBlock(state.token, 'setup-token')));
    const form = h('form', { class: 'stack', novalidate: true },
      h('h2', null, 'Create an ingest token'),
      h('p', { class: 'muted' }, 'Agents authenticate with it; it can write data for site ', h('strong', null, state.site), ' only.'),
      field('Token name', name, 'Helps you recognise it in the token list.'),
      h('div', { class: 'actions' }, create), errors, shown, nav(true, next));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (!name.value.trim()) return mount(errors, notice('error', 'Token name: enter a name, e.g. agents-eu.', 'setup-validation'));
      const t = await withButton(create, errors, () => mutate<{ id: string | number; token: string }>('POST', 'tokens', { site: state.site, name: name.value.trim() }));
      if (!t) return;
      if (!t.token) return mount(errors, notice('error', 'The collector did not return the token.'));
      state.token = t.token;
      showToken();
      create.disabled = true;
      next.disabled = false;
      next.focus();
    });
    if (state.token) {
      showToken();
      create.disabled = true;
    }
    mount(body, form);
  }

  function installStep(): void {
    const addr = h('input', { type: 'text', testid: 'setup-collector-addr', value: agentAddress(setup.grpc_addr), autocomplete: 'off' });
    const cmds = h('div', { class: 'stack' });
    const draw = () => {
      const c = installCommands({ site: state.site, token: state.token, addr: addr.value.trim() || agentAddress(setup.grpc_addr), version: setup.version });
      mount(cmds,
        h('h3', null, 'Binary (systemd host)'), codeBlock(c.binary, 'setup-cmd-binary'),
        h('h3', null, 'Docker'), codeBlock(c.docker, 'setup-cmd-docker'),
        h('h3', null, 'Kubernetes (Helm, agent DaemonSet on GPU nodes)'), codeBlock(c.helm, 'setup-cmd-helm'),
        h('h3', null, 'OpenTelemetry (an instrumented application, no agent)'),
        h('p', { class: 'muted' }, 'Spans that follow the GenAI semantic conventions become samples of this site; GenAI duration, TTFT and token histograms become per-interval series (the OTLP page); other spans and metrics are ignored.'),
        codeBlock(otelCommands({ token: state.token, endpoint: otlpEndpoint() }), 'setup-cmd-otel'));
    };
    // the OTLP/gRPC receiver on the host the agents reach, at its own port (4317) when on
    const otlpEndpoint = (): string => {
      const agent = addr.value.trim() || agentAddress(setup.grpc_addr);
      const host = agent.replace(/:\d+$/, '');
      const port = (setup.otlp_grpc_addr ?? setup.grpc_addr).split(':').pop();
      return `${host}:${port}`;
    };
    addr.addEventListener('input', draw);
    draw();
    mount(body, h('div', { class: 'stack' },
      h('h2', null, 'Start an agent on each inference host'),
      h('p', { class: 'muted' }, 'The agent probes the local model servers (Ollama, vLLM, OpenAI-compatible), times real traffic through its proxy, reads GPU telemetry and ships it all here over gRPC.'),
      field('Collector gRPC address, as the hosts reach it', addr, `The collector listens on ${setup.grpc_addr}; use https:// in the commands when it serves TLS.`),
      cmds,
      nav(true, h('button', { class: 'btn btn-primary', type: 'button', testid: 'setup-next', on: { click: () => go(3) } }, 'Next: alerts →'))));
  }

  function channelStep(): void {
    const result = h('div', { testid: 'setup-channel-test-slot' });
    const after = h('div');
    const next = h('button', { class: 'btn btn-primary', type: 'button', testid: 'setup-next', on: { click: () => go(4) } }, state.channel ? 'Next →' : 'Skip for now →');
    const showTest = () => {
      const test = h('button', { class: 'btn btn-primary', type: 'button', testid: 'setup-channel-test' }, `Send a test alert through ${state.channel}`);
      test.addEventListener('click', () => void sendTest(state.channel, test, result, 'setup-channel-test-result'));
      mount(after, notice('ok', `Channel ${state.channel} created.`, 'setup-channel-created'), h('div', { class: 'actions' }, test), result);
      next.textContent = 'Next →';
    };
    const form = channelForm({
      idPrefix: 'setup-channel',
      defaultName: 'oncall',
      onCreated: (c: Channel) => {
        state.channel = c.name;
        form.hidden = true;
        showTest();
      },
    });
    mount(body, h('div', { class: 'stack' },
      h('h2', null, 'Where should alerts go?'),
      h('p', { class: 'muted' }, 'When a rule fires, LLMscope sends an alert through a channel. Create one and send a test to see the receiver’s real answer.'),
      form, after, nav(true, next)));
    if (state.channel) {
      form.hidden = true;
      showTest();
    }
  }

  function doneStep(): void {
    const waiting = h('div', { testid: 'setup-waiting' }, h('div', { class: 'loading' }, h('span', { class: 'spinner' }), `Waiting for the first points from site ${state.site}…`));
    const finish = link(href('/', { site: state.site }), { class: 'btn btn-primary', testid: 'setup-finish' }, 'Go to the overview');
    mount(body, h('div', { class: 'stack', testid: 'setup-done' },
      h('h2', null, 'You are set up'),
      h('ul', { class: 'checklist' },
        h('li', null, 'Site ', h('strong', null, state.site)),
        h('li', null, state.token ? 'An ingest token for its agents' : 'No token created in this run'),
        h('li', null, state.channel ? ['Alerts go to ', h('strong', null, state.channel), ' (route more under Settings → Routes)'] : 'No alert channel yet — add one under Settings → Channels')),
      waiting,
      h('p', { class: 'muted' }, `The baseline of each series is learnt from its first ${setup.baseline_points ?? 50} points; until then its chart says “learning”.`),
      nav(true, finish)));
    const poll = async () => {
      if (ctx.signal.aborted || !waiting.isConnected) return;
      try {
        const s = await get<SeriesInfo[]>('series', { site: state.site }, ctx.signal);
        if (s.length) {
          mount(waiting, notice('ok', `Receiving data: ${s.length} series from site ${state.site}.`, 'setup-receiving'));
          return;
        }
      } catch {
        /* keep waiting */
      }
      window.setTimeout(() => void poll(), 5000);
    };
    void poll();
  }

  if (!setup.first_run && !ctx.params.has('step')) {
    body.before(notice('info', 'LLMscope already receives data. Run these steps again to add a site, or go back to the overview.', 'setup-not-first'));
  }
  render();
}
