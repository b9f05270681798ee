/** Why a request was refused before it could poll or be held. */
export type RejectReason =
  /** 429: the client already holds `http.maxHeldPerClient` requests. */
  | 'client_held_limit'
  /** 429: sooner than `http.minPollIntervalMs` after the client's previous poll. */
  | 'poll_interval'
  /** 503: the process already holds `http.maxHeld` requests. */
  | 'held_limit'
  /** 503: the app is shutting down. */
  | 'shutting_down'
  /** 503: the change index (Redis) did not answer. */
  | 'index_unavailable'
  /** 400: a malformed cursor, wait, partition or batch body. */
  | 'bad_request';

/**
 * The watch refused a request (a limit, shutdown, an unavailable index). The core names the reason
 * and when to ask again; the transport turns it into a status and a Retry-After header.
 */
export class WatchRefusedError extends Error {
  constructor(
    readonly reason: Exclude<RejectReason, 'bad_request'>,
    readonly retryAfterS: number,
    message: string,
  ) {
    super(message);
    this.name = 'WatchRefusedError';
  }
}

/** `authorize` said no when a held request woke: access was revoked meanwhile. */
export class AccessRevokedError extends Error {
  constructor(message = 'no longer allowed to follow this feed') {
    super(message);
    this.name = 'AccessRevokedError';
  }
}
