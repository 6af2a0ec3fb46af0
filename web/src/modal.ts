import { appendChildren, h, type Child } from './dom';

// Keyboard-usable modal dialogs: focus moves in, Tab stays inside, Esc closes, and focus
// goes back to whatever had it before. Modals stack (the admin-token prompt can open over a
// violation's detail).

export interface Modal {
  el: HTMLDivElement;
  body: HTMLDivElement;
  close(): void;
}

interface Open {
  modal: Modal;
  restore: Element | null;
  onClose?: () => void;
}

const stack: Open[] = [];

const FOCUSABLE =
  'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(root: HTMLElement): HTMLElement[] {
  return Array.from(root.querySelectorAll<HTMLElement>(FOCUSABLE)).filter((e) => e.offsetParent !== null || e === document.activeElement);
}

document.addEventListener(
  'keydown',
  (ev) => {
    const top = stack[stack.length - 1];
    if (!top) return;
    if (ev.key === 'Escape') {
      ev.preventDefault();
      ev.stopPropagation();
      top.modal.close();
    } else if (ev.key === 'Tab') {
      const dialog = top.modal.el.querySelector<HTMLElement>('.modal')!;
      const items = focusables(dialog);
      if (items.length === 0) {
        ev.preventDefault();
        dialog.focus();
        return;
      }
      const first = items[0]!;
      const last = items[items.length - 1]!;
      const active = document.activeElement;
      if (!dialog.contains(active)) {
        ev.preventDefault();
        first.focus();
      } else if (ev.shiftKey && (active === first || active === dialog)) {
        ev.preventDefault();
        last.focus();
      } else if (!ev.shiftKey && active === last) {
        ev.preventDefault();
        first.focus();
      }
    }
  },
  true,
);

let seq = 0;

export function openModal(opts: {
  title: Child;
  content?: Child;
  testid: string;
  wide?: boolean;
  onClose?: () => void;
}): Modal {
  const id = `modal-title-${++seq}`;
  const body = h('div', { class: 'modal-body' });
  const closeBtn = h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Close', testid: `${opts.testid}-close` }, '×');
  const dialog = h(
    'div',
    { class: `modal${opts.wide ? ' modal-wide' : ''}`, role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': id, tabindex: '-1', testid: opts.testid },
    h('div', { class: 'modal-head' }, h('h2', { id }, opts.title), closeBtn),
    body,
  );
  const backdrop = h('div', { class: 'modal-backdrop' }, dialog);
  if (opts.content !== undefined) appendChildren(body, [opts.content]);
  const entry: Open = { modal: undefined as unknown as Modal, restore: document.activeElement, onClose: opts.onClose };
  let closed = false;
  const modal: Modal = {
    el: backdrop,
    body,
    close() {
      if (closed) return;
      closed = true;
      const i = stack.indexOf(entry);
      if (i >= 0) stack.splice(i, 1);
      backdrop.remove();
      if (stack.length === 0) document.body.classList.remove('modal-open');
      entry.onClose?.();
      const r = entry.restore;
      if (r instanceof HTMLElement && r.isConnected) r.focus();
    },
  };
  entry.modal = modal;
  closeBtn.addEventListener('click', () => modal.close());
  backdrop.addEventListener('mousedown', (ev) => {
    if (ev.target === backdrop) modal.close();
  });
  stack.push(entry);
  document.body.appendChild(backdrop);
  document.body.classList.add('modal-open');
  // Focus the first field, else the first button, else the dialog itself.
  queueMicrotask(() => {
    const first = dialog.querySelector<HTMLElement>('input:not([type=hidden]), select, textarea') ?? focusables(body)[0] ?? dialog;
    first.focus();
  });
  return modal;
}

/** Closes every open modal (on navigation). */
export function closeAllModals(): void {
  while (stack.length) stack[stack.length - 1]!.modal.close();
}
