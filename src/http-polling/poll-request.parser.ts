import { BadRequestException } from '@nestjs/common';
import type { PollingRequest } from '../polling-request.interface';
import type { PartitionSource } from './poll-route-options.interface';

/** Values of one query parameter, read from the raw URL so the app's query parser cannot hide
 * `since[a]=1` or repeated parameters. */
function queryValues(request: PollingRequest, name: string): string[] {
  const url = request.originalUrl ?? request.url;
  const question = url.indexOf('?');
  if (question < 0) return [];
  const params = new URLSearchParams(url.slice(question + 1));
  for (const key of params.keys()) {
    if (key !== name && key.startsWith(`${name}[`)) {
      throw new BadRequestException(`query parameter "${name}" must be a single plain value`);
    }
  }
  return params.getAll(name);
}

/** One query parameter, read from the raw URL: repeated or `name[..]` → 400. */
export function readQueryParam(request: PollingRequest, name: string): string | undefined {
  const values = queryValues(request, name);
  if (values.length > 1) {
    throw new BadRequestException(`query parameter "${name}" must appear at most once`);
  }
  return values[0];
}

/** `?since=`: absent → null; present but empty or oversized → 400 (decoded by the caller). */
export function readSince(request: PollingRequest): string | null {
  const since = readQueryParam(request, 'since');
  if (since === undefined) return null;
  if (since.length === 0) throw new BadRequestException('since must not be empty');
  return since;
}

// Plain decimal seconds; large values are clamped later, exponents and signs are refused.
const SECONDS = /^(0|[1-9][0-9]{0,14})(\.[0-9]{1,3})?$/;

function parseSeconds(text: string, source: string): number {
  if (!SECONDS.test(text)) {
    throw new BadRequestException(
      `${source} must be a number of seconds (0 or more), got "${text.slice(0, 40)}"`,
    );
  }
  return Number(text);
}

/** `wait` from the wait parameter or RFC 7240 `Prefer: wait=N`. */
export interface RequestedWait {
  seconds: number | null;
  fromPrefer: boolean;
}

export function readWait(request: PollingRequest): RequestedWait {
  const query = readQueryParam(request, 'wait');
  if (query !== undefined) return { seconds: parseSeconds(query, 'wait'), fromPrefer: false };
  const prefer = request.headers.prefer;
  const header = Array.isArray(prefer) ? prefer.join(',') : prefer;
  if (!header) return { seconds: null, fromPrefer: false };
  for (const preference of header.split(',')) {
    const [token, ...rest] = preference.split(';')[0].split('=');
    if (token.trim().toLowerCase() !== 'wait') continue;
    const value = rest
      .join('=')
      .trim()
      .replace(/^"(.*)"$/, '$1');
    return { seconds: parseSeconds(value, 'Prefer: wait'), fromPrefer: true };
  }
  return { seconds: null, fromPrefer: false };
}

/** Clamped to [0, max] seconds, in milliseconds that setTimeout accepts. */
export function holdMs(requested: RequestedWait, defaultS: number, maxS: number): number {
  const seconds = Math.min(requested.seconds ?? defaultS, maxS);
  return Math.max(0, Math.round(seconds * 1000));
}

// eslint-disable-next-line no-control-regex -- rejecting control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
export const MAX_PARTITION_LENGTH = 200;

/** The partition value of this request, validated like any input. */
export function readPartition(request: PollingRequest, source: PartitionSource): string {
  const raw = typeof source === 'string' ? request.params?.[source] : source(request);
  if (typeof raw !== 'string' && typeof raw !== 'number') {
    throw new BadRequestException('the feed partition is missing');
  }
  const value = String(raw);
  if (value.length === 0 || value.length > MAX_PARTITION_LENGTH || CONTROL.test(value)) {
    throw new BadRequestException(
      `the feed partition must be 1 to ${MAX_PARTITION_LENGTH} characters without control characters`,
    );
  }
  return value;
}
