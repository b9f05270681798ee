/** What travels on the change bus, inside one process and between instances. */
export type ChangeNotice =
  | {
      kind: 'changes';
      generation: string;
      /** Index head after the batch. */
      position: number;
      /** Feeds that received at least one change in the batch. */
      feeds: string[];
      /**
       * Commit time of the newest change in the batch (epoch ms, the reading instance's clock):
       * the commit timestamp when the server tracks them (`track_commit_timestamp`), else the
       * writing transaction's start (`changed_at`). Optional: older instances do not send it.
       */
      committedAt?: number;
      /**
       * The index was trimmed (then `feeds` is empty): a quiet feed's head is the index floor, so
       * heads cached from before may be stale. Older instances read it as a change of no feed.
       */
      trimmed?: true;
    }
  | {
      /**
       * Every local waiter must re-check its cursor: pub/sub gap, new generation, shutdown, a new
       * leader (its predecessor may have appended without announcing it), or a publish that
       * failed (`republish`: sent once publishing works again).
       */
      kind: 'wake-all';
      reason: 'reconnect' | 'generation' | 'shutdown' | 'takeover' | 'republish';
    };
