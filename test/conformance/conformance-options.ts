/** How long both servers hold a long-poll read; the suite waits this plus 1 s for a 204. */
export const LONG_POLL_TIMEOUT_MS = 3000;
