// Live updates from `/api/v1/events` (server-sent events): `points` after each evaluated
// commit, `violation` when one opens, resolves or is acknowledged. One EventSource is shared
// by whoever listens; it closes when nobody does.

export interface PointsEvent {
  keys: string[];
  ts: number;
}

export interface ViolationEvent {
  id: string | number;
  event: 'opened' | 'resolved' | 'acknowledged' | string;
  key: string;
  rule: number;
}

type Listener = { points?: (e: PointsEvent) => void; violation?: (e: ViolationEvent) => void; state?: (live: boolean) => void };

const listeners = new Set<Listener>();
let source: EventSource | null = null;
let live = false;

function setLive(v: boolean): void {
  live = v;
  listeners.forEach((l) => l.state?.(v));
}

function open(): void {
  if (source || typeof EventSource === 'undefined') return;
  source = new EventSource('/api/v1/events');
  source.addEventListener('open', () => setLive(true));
  source.addEventListener('error', () => setLive(false));
  source.addEventListener('points', (ev) => {
    try {
      const data = JSON.parse((ev as MessageEvent<string>).data) as PointsEvent;
      listeners.forEach((l) => l.points?.(data));
    } catch {
      /* ignore malformed */
    }
  });
  source.addEventListener('violation', (ev) => {
    try {
      const data = JSON.parse((ev as MessageEvent<string>).data) as ViolationEvent;
      listeners.forEach((l) => l.violation?.(data));
    } catch {
      /* ignore malformed */
    }
  });
}

/** Listens to live events; returns the function that stops listening. */
export function subscribe(l: Listener): () => void {
  listeners.add(l);
  open();
  l.state?.(live);
  return () => {
    listeners.delete(l);
    if (listeners.size === 0 && source) {
      source.close();
      source = null;
      live = false;
    }
  };
}

/** Calls `fn` at most once per `ms`, trailing call included. */
export function throttle(fn: () => void, ms: number): { call: () => void; cancel: () => void } {
  let last = 0;
  let timer: number | undefined;
  return {
    call() {
      const now = Date.now();
      const wait = last + ms - now;
      if (wait <= 0 && timer === undefined) {
        last = now;
        fn();
      } else if (timer === undefined) {
        timer = window.setTimeout(() => {
          timer = undefined;
          last = Date.now();
          fn();
        }, Math.max(wait, 0));
      }
    },
    cancel() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
}
