/** What travels on the change bus, inside one process and between instances. */
export type ChangeNotice =
  | {
      kind: 'changes';
      generation: string;
      /** Index head after the batch. */
      position: number;
      /** Feeds that received at least one change in the batch. */
      feeds: string[];
    }
  | {
      /** Every local waiter must re-check its cursor (pub/sub gap, new generation, shutdown). */
      kind: 'wake-all';
      reason: 'reconnect' | 'generation' | 'shutdown';
    };
