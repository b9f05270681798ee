import type { Provider } from '@nestjs/common';
import { POLLING_RESOLVED_OPTIONS } from '../polling.tokens';
import type { ResolvedOptions } from '../resolve-options';
import { FeedCursorCodec } from './feed-cursor';

export const feedCursorProvider: Provider = {
  provide: FeedCursorCodec,
  useFactory: (options: ResolvedOptions) => new FeedCursorCodec(options.http.cursorSecret),
  inject: [POLLING_RESOLVED_OPTIONS],
};
