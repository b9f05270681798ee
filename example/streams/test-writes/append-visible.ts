import { Injectable } from '@nestjs/common';
import { FeedChecker } from '../../../src/http-polling/watch/feed-checker.service';
import { FeedWatch } from '../../../src/http-polling/watch/feed-watch.service';

const NEVER_CLOSED = { closed: false, onClose: () => undefined, offClose: () => undefined };
const MAX_WAIT_MS = 10_000;

/**
 * Read-your-writes for the test write shim (library internals, test use only): an append answers
 * once the change reader has indexed its row, so the offset it returns is readable at once. Waits
 * on the hold core like a long poll on the stream's feed, from the head read before the insert.
 */
@Injectable()
export class AppendVisible {
  constructor(
    private readonly checker: FeedChecker,
    private readonly watches: FeedWatch,
  ) {}

  head(feed: string): Promise<string> {
    return this.checker.head(feed);
  }

  /** The feed cursor once `id` shows among the changes after `before`. */
  async after(feed: string, before: string, id: string): Promise<string> {
    const since = this.checker.decode(before)!;
    const watch = this.watches.open({
      clientKey: 'scratch-writes',
      feeds: [feed],
      holds: true,
      label: null,
    });
    const outcome = await watch.until(
      async () => {
        const check = await watch.check(feed, since);
        return check.kind === 'changes' && check.changedIds.includes(id) ? check.cursor : null;
      },
      MAX_WAIT_MS,
      NEVER_CLOSED,
    );
    if (outcome.kind !== 'found')
      throw new Error(`append ${id} was not indexed within ${MAX_WAIT_MS} ms`);
    return outcome.value;
  }
}
