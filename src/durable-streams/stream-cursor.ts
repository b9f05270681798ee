/** PROTOCOL.md §10.1: cursors count 20 s intervals from 2024-10-09T00:00:00Z. */
const EPOCH_MS = Date.UTC(2024, 9, 9);
const INTERVAL_MS = 20_000;
const MAX_JITTER_S = 3600;

/**
 * The `Stream-Cursor` of a live response: the current interval number, or, when the client
 * echoed a cursor at or past it, that cursor plus 1 to 3600 s of random jitter, so a cursor never
 * goes backwards and a CDN never serves one cached empty answer forever.
 */
export function streamCursor(echoed: string | null, now = Date.now()): string {
  const current = Math.floor((now - EPOCH_MS) / INTERVAL_MS);
  const client = echoed !== null && /^[0-9]{1,15}$/.test(echoed) ? Number(echoed) : NaN;
  if (!(client >= current)) return String(current);
  const jitterS = 1 + Math.floor(Math.random() * MAX_JITTER_S);
  return String(client + Math.max(1, Math.ceil((jitterS * 1000) / INTERVAL_MS)));
}
