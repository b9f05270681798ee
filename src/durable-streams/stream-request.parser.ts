import { BadRequestException } from '@nestjs/common';
import type { PollingRequest } from '../polling-request.interface';
import { readQueryParam } from '../http-polling/poll-request.parser';
import type { RequestedOffset, StreamOffsets } from './stream-offset';

export type LiveMode = 'long-poll' | 'sse';

export interface StreamQuery {
  /** Absent `offset`: the stream's start (catch-up reads only). */
  offset: RequestedOffset;
  live: LiveMode | null;
  /** The `cursor` the client echoed (PROTOCOL.md §10.1), if any. */
  cursor: string | null;
}

const MAX_OFFSET_LENGTH = 256;

/** `offset`, `live` and `cursor` of a read; anything malformed is a 400 (PROTOCOL.md §5.6). */
export function readStreamQuery(req: PollingRequest, offsets: StreamOffsets): StreamQuery {
  const liveText = readQueryParam(req, 'live');
  let live: LiveMode | null = null;
  if (liveText === 'long-poll' || liveText === 'sse') live = liveText;
  else if (liveText !== undefined) {
    throw new BadRequestException('live must be "long-poll" or "sse"');
  }
  const offsetText = readQueryParam(req, 'offset');
  if (offsetText === undefined && live !== null) {
    throw new BadRequestException(`offset is required with live=${live}`);
  }
  let offset: RequestedOffset | null = { kind: 'start' };
  if (offsetText !== undefined) {
    offset = offsetText.length <= MAX_OFFSET_LENGTH ? offsets.decode(offsetText) : null;
    if (!offset) {
      throw new BadRequestException('offset must be -1, now or an offset this stream issued');
    }
  }
  return { offset, live, cursor: readQueryParam(req, 'cursor') ?? null };
}
