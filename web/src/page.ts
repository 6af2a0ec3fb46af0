export interface PageCtx {
  /** The page's query parameters. */
  params: URLSearchParams;
  /** The site selected in the header ('' = all sites). */
  site: string;
  /** Aborted when the user leaves the page. */
  signal: AbortSignal;
  /** Runs when the user leaves the page (close EventSources, destroy charts…). */
  onCleanup(fn: () => void): void;
}

export type PageFn = (view: HTMLElement, ctx: PageCtx) => void | Promise<void>;
