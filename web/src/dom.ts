// A tiny DOM helper. Every piece of text goes in through text nodes or textContent; nothing
// here ever assigns innerHTML, so a label such as `<img src=x onerror=…>` stays inert.

export type Child = Node | string | number | null | undefined | false | Child[];

type Handler = (ev: Event) => void;

export interface Attrs {
  class?: string;
  testid?: string;
  style?: Partial<CSSStyleDeclaration> | Record<string, string>;
  on?: Record<string, Handler>;
  dataset?: Record<string, string | number | undefined>;
  [attr: string]: unknown;
}

export function appendChildren(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) appendChildren(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

function applyAttrs(el: Element, attrs: Attrs | null | undefined): void {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.setAttribute('class', String(v));
    else if (k === 'testid') el.setAttribute('data-testid', String(v));
    else if (k === 'style') Object.assign((el as HTMLElement).style, v);
    else if (k === 'on') {
      for (const [ev, fn] of Object.entries(v as Record<string, Handler>)) el.addEventListener(ev, fn);
    } else if (k === 'dataset') {
      for (const [dk, dv] of Object.entries(v as Record<string, unknown>)) {
        if (dv !== undefined) (el as HTMLElement).dataset[dk] = String(dv);
      }
    } else if (k.startsWith('on')) {
      throw new Error(`use on: {} for ${k}`);
    } else if (k === 'value' && 'value' in el) {
      (el as HTMLInputElement).value = String(v);
    } else if (k === 'checked' && el instanceof HTMLInputElement) {
      el.checked = Boolean(v);
    } else if (k === 'selected' && el instanceof HTMLOptionElement) {
      el.selected = Boolean(v);
    } else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

/** Creates an HTML element: `h('button', {testid: 'x', on: {click}}, 'Label')`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  appendChildren(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element. */
export function svg(tag: string, attrs?: Record<string, string | number>, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  appendChildren(el, children);
  return el as SVGElement;
}

/** Replaces all children of `el`. */
export function mount(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  appendChildren(el, children);
}

/** A <select> with options [value, label]. */
export function select(
  attrs: Attrs,
  options: Array<[string, string]>,
  value: string,
): HTMLSelectElement {
  const s = h('select', attrs);
  for (const [v, label] of options) s.appendChild(h('option', { value: v, selected: v === value }, label));
  s.value = value;
  return s;
}

/** A labelled form field. */
export function field(label: string, control: HTMLElement, hint?: string): HTMLLabelElement {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control, hint ? h('span', { class: 'field-hint' }, hint) : null);
}

/** A small status/message box. */
export function notice(kind: 'error' | 'info' | 'ok' | 'warn', text: string, testid?: string): HTMLDivElement {
  return h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status', testid }, text);
}

/** An empty state that tells the user what to do next. */
export function emptyState(title: string, next: Child, testid = 'empty-state'): HTMLDivElement {
  return h('div', { class: 'empty', testid }, h('div', { class: 'empty-title' }, title), h('div', { class: 'empty-next' }, next));
}

export function debounce<A extends unknown[]>(fn: (...a: A) => void, ms: number): (...a: A) => void {
  let t: number | undefined;
  return (...a: A) => {
    if (t !== undefined) clearTimeout(t);
    t = window.setTimeout(() => fn(...a), ms);
  };
}

export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Clipboard API needs a secure context; fall back to a hidden textarea.
    const ta = h('textarea', { style: { position: 'fixed', left: '-9999px' } });
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    ta.remove();
    return ok;
  }
}

/** A copy-to-clipboard block for commands or secrets. */
export function codeBlock(text: string, testid: string): HTMLDivElement {
  const pre = h('pre', { class: 'code', testid }, text);
  const btn = h('button', { class: 'btn btn-small copy-btn', type: 'button', testid: `${testid}-copy` }, 'Copy');
  btn.addEventListener('click', async () => {
    const ok = await copyText(text);
    btn.textContent = ok ? 'Copied' : 'Select and copy';
    window.setTimeout(() => (btn.textContent = 'Copy'), 1500);
  });
  return h('div', { class: 'code-wrap' }, pre, btn);
}
