import { HttpException } from '@nestjs/common';
import { toHttpError } from '../watch-http';

/** An HttpException's status and message; anything else is a 500 whose details stay in the log. */
export function errorPayload(error: unknown): { statusCode: number; message: string } {
  error = toHttpError(error, null); // the core's refusals (403, 503) as HTTP errors
  if (error instanceof HttpException) {
    const body = error.getResponse();
    const message =
      typeof body === 'object' && body !== null && 'message' in body
        ? String((body as { message: unknown }).message)
        : error.message;
    return { statusCode: error.getStatus(), message };
  }
  return { statusCode: 500, message: 'Internal server error' };
}
