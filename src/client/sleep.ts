/** Node turns a larger (or NaN) setTimeout delay into 1 ms: a hot loop. */
export const MAX_TIMER_MS = 2_147_483_647;

/** Subscribes a listener to events that should cut a wait short; returns the unsubscribe. */
export type WakeSource = (listener: () => void) => () => void;

/** How a {@link sleep} ended. */
export type SleepEnd = 'elapsed' | 'woken' | 'aborted';

/**
 * Waits `ms` with one `setTimeout` (so jest fake timers drive it), ending early when `signal`
 * aborts or `wake` fires. Leaves no timer or listener behind however it ends.
 */
export function sleep(
  ms: number,
  signal: AbortSignal,
  wake?: WakeSource | null,
): Promise<SleepEnd> {
  if (signal.aborted) return Promise.resolve('aborted');
  const delay = Number.isFinite(ms) ? Math.min(Math.max(ms, 0), MAX_TIMER_MS) : 0;
  return new Promise<SleepEnd>((resolve) => {
    let unsubscribe: (() => void) | null = null;
    const finish = (end: SleepEnd) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      unsubscribe?.();
      resolve(end);
    };
    const onAbort = () => finish('aborted');
    const timer = setTimeout(() => finish('elapsed'), delay);
    signal.addEventListener('abort', onAbort);
    unsubscribe = wake ? wake(() => finish('woken')) : null;
  });
}
