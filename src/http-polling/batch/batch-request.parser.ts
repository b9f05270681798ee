import { BadRequestException } from '@nestjs/common';
import { MAX_CURSOR_LENGTH } from '../feed-cursor';

export interface BatchEntry {
  /** The route path a client would GET, used as the key of the answer too. */
  key: string;
  /** The client's cursor for that feed, or null to start at the head. */
  since: string | null;
}

export interface BatchRequest {
  entries: BatchEntry[];
  /** Seconds asked for, or null for the route's default. */
  waitS: number | null;
}

const MAX_KEY_LENGTH = 500;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `{feeds: {"/path": cursor|null, ...}, wait?: seconds}`, strictly. */
export function parseBatchRequest(body: unknown, maxFeeds: number): BatchRequest {
  if (!isPlainObject(body)) {
    throw new BadRequestException('the body must be a JSON object {feeds, wait}');
  }
  for (const key of Object.keys(body)) {
    if (key !== 'feeds' && key !== 'wait')
      throw new BadRequestException(`unknown field "${key.slice(0, 40)}"`);
  }
  const { feeds, wait } = body;
  if (!isPlainObject(feeds))
    throw new BadRequestException('feeds must be an object of path → cursor');
  const keys = Object.keys(feeds);
  if (keys.length === 0) throw new BadRequestException('feeds must name at least one feed');
  if (keys.length > maxFeeds) {
    throw new BadRequestException(`feeds names ${keys.length} feeds; the maximum is ${maxFeeds}`);
  }
  const entries = keys.map((key) => {
    if (key.length > MAX_KEY_LENGTH || !key.startsWith('/')) {
      throw new BadRequestException(
        `feed key "${key.slice(0, 60)}" must be a route path starting with /`,
      );
    }
    const since = feeds[key];
    if (
      since !== null &&
      (typeof since !== 'string' || since.length === 0 || since.length > MAX_CURSOR_LENGTH)
    ) {
      throw new BadRequestException(
        `the cursor for "${key.slice(0, 60)}" must be a cursor string or null`,
      );
    }
    return { key, since: since as string | null };
  });
  if (wait !== undefined && (typeof wait !== 'number' || !Number.isFinite(wait) || wait < 0)) {
    throw new BadRequestException('wait must be a number of seconds (0 or more)');
  }
  return { entries, waitS: wait === undefined ? null : wait };
}
