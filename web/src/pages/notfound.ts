import { emptyState, h } from '../dom';
import { href, link } from '../router';
import type { PageCtx } from '../page';

export function notFoundPage(view: HTMLElement, _ctx: PageCtx): void {
  view.append(
    h('h1', null, 'Page not found'),
    emptyState('There is no page at this address.', ['Go to the ', link(href('/'), null, 'overview'), '.'], 'not-found'),
  );
}
