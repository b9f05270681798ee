/** What a channel reports to the relay that listens on it. */
export interface BusChannelListener {
  message(text: string): void;
  /**
   * Subscribed again after a gap (reconnect, failover): messages of the gap are lost, so every
   * local waiter must re-check its cursor. Called only once the new subscription is live.
   */
  resubscribed(): void;
  /** The subscription is gone (connection closed): messages may be missed until `resubscribed`. */
  lost(): void;
  warn(text: string): void;
}

/** One Redis pub/sub channel between the instances: plain pub/sub or sharded on a cluster. */
export interface BusChannel {
  /** Resolves once subscribed; fails when the first subscription fails. */
  subscribe(listener: BusChannelListener): Promise<void>;
  publish(text: string): Promise<unknown>;
  close(): Promise<void>;
}
