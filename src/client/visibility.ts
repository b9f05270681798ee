import type { WakeSource } from './sleep.js';

/** The little of the DOM the client uses, detected on `globalThis` (no DOM types needed). */
interface EventTargetLike {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}
interface DocumentLike extends EventTargetLike {
  visibilityState?: string;
}

const isEventTarget = (value: unknown): value is EventTargetLike =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as EventTargetLike).addEventListener === 'function' &&
  typeof (value as EventTargetLike).removeEventListener === 'function';

/** `document` when running in a page (looked up on every call, so it may appear later). */
function pageDocument(): DocumentLike | null {
  const doc = (globalThis as unknown as { document?: unknown }).document;
  return isEventTarget(doc) ? (doc as DocumentLike) : null;
}

/** `window` (or a worker's global scope) when it takes event listeners. */
function pageWindow(): EventTargetLike | null {
  const scope: unknown = globalThis;
  return isEventTarget(scope) ? scope : null;
}

/** True while a page's `document.visibilityState` is `hidden`; false outside a browser. */
export function isPageHidden(): boolean {
  return pageDocument()?.visibilityState === 'hidden';
}

/**
 * Calls `listener` when it is worth asking at once: the page became visible
 * (`visibilitychange`), the window got `focus`, or the browser came back `online`. Returns the
 * unsubscribe. Does nothing outside a browser.
 */
export const onPageResume: WakeSource = (listener) => {
  const doc = pageDocument();
  const win = pageWindow();
  const onVisibility = () => {
    if (doc?.visibilityState !== 'hidden') listener();
  };
  doc?.addEventListener('visibilitychange', onVisibility);
  win?.addEventListener('focus', listener);
  win?.addEventListener('online', listener);
  return () => {
    doc?.removeEventListener('visibilitychange', onVisibility);
    win?.removeEventListener('focus', listener);
    win?.removeEventListener('online', listener);
  };
};

/**
 * Resolves true at once when the page is visible (or there is no page), else when it becomes
 * visible; false when `signal` aborts first.
 */
export function whenPageVisible(signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  const doc = pageDocument();
  if (!doc || doc.visibilityState !== 'hidden') return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const finish = (visible: boolean) => {
      doc.removeEventListener('visibilitychange', onChange);
      signal.removeEventListener('abort', onAbort);
      resolve(visible);
    };
    const onChange = () => {
      if (doc.visibilityState !== 'hidden') finish(true);
    };
    const onAbort = () => finish(false);
    doc.addEventListener('visibilitychange', onChange);
    signal.addEventListener('abort', onAbort);
  });
}
