// Follows one channel's message feed over the transport the page's switch picked.
import { followFeed, followFeeds } from '/sdk/index.js';
import { loggedFetch, logStreamEvent } from './request-log.js';

export const TRANSPORTS = { long: 'long poll', sse: 'SSE', short: 'short poll', batch: 'batch' };

/**
 * Starts following `channel` from `since`; abort the returned controller to stop (switching
 * transport aborts and starts again from the last cursor, without reloading the channel).
 * `onChanges(body, cursor)` gets every answer with changes.
 */
export function followChannel({
  channel,
  transport,
  since,
  headers,
  onChanges,
  onResync,
  onStatus,
}) {
  const follow = new AbortController();
  const path = `/channels/${encodeURIComponent(channel)}`;
  const panel = `#${channel}`;
  const common = { headers, signal: follow.signal, fetch: loggedFetch(panel) };
  const done =
    transport === 'batch'
      ? followFeeds({
          ...common,
          url: '/poll',
          feeds: { [`${path}/changes`]: since },
          onChanges: (_feed, body, info) => onChanges(body, info.cursor),
          onResync: (_feed, cursor) => onResync(cursor),
        })
      : followFeed({
          ...common,
          url: `${path}/changes`,
          streamUrl: `${path}/stream`,
          mode: transport,
          since,
          // Short enough to see the short-poll rhythm in the log (the server's hint is kept within).
          shortPoll: { minMs: 1000, maxMs: 2000 },
          onChanges: (body, info) => {
            if (info.transport === 'sse') logStreamEvent(panel, info.cursor);
            return onChanges(body, info.cursor);
          },
          onResync,
          onFallback: (reason) => onStatus(`SSE fell back to long polling (${reason.message})`),
        });
  done.catch((error) => onStatus(String(error)));
  return follow;
}
