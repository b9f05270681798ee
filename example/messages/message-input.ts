import { BadRequestException } from '@nestjs/common';

const CHANNEL = /^[a-z0-9][a-z0-9_-]{0,49}$/;
const ID = /^[1-9][0-9]{0,17}$/;
export const MAX_BODY_LENGTH = 2000;

export function channelOf(value: unknown): string {
  if (typeof value !== 'string' || !CHANNEL.test(value)) {
    throw new BadRequestException('channel must be 1–50 characters: a-z, 0-9, _ and -');
  }
  return value;
}

export function idOf(value: unknown, what = 'id'): string {
  if (typeof value !== 'string' || !ID.test(value)) {
    throw new BadRequestException(`${what} must be a positive whole number`);
  }
  return value;
}

/** `{body: "..."}` with 1–2000 characters of text. */
export function messageBodyOf(payload: unknown): string {
  const body = (payload as { body?: unknown } | null)?.body;
  if (typeof body !== 'string' || body.trim().length === 0 || body.length > MAX_BODY_LENGTH) {
    throw new BadRequestException(
      `body must be a non-empty string of at most ${MAX_BODY_LENGTH} characters`,
    );
  }
  return body;
}
