import { Catch, HttpException, type ArgumentsHost } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { STATUS_CODES } from 'node:http';

/** An http-errors error with a client status that may be shown (the body parser's 413, 415, ...). */
function clientHttpError(exception: unknown): { status: number; message: string } | undefined {
  if (exception instanceof HttpException || !(exception instanceof Error)) return undefined;
  const { status, expose } = exception as Error & { status?: unknown; expose?: unknown };
  if (typeof status !== 'number' || status < 400 || status >= 500 || expose === false) {
    return undefined;
  }
  return { status, message: exception.message };
}

/**
 * Answers the client errors of Express middleware (an oversized body: 413) like Nest's own 4xx
 * exceptions. Nest answers them too, but logs each one as an ERROR with its stack: a flood of
 * oversized bodies would flood the log and page whoever watches for errors. Register it before
 * `listen()`: `app.useGlobalFilters(new ClientErrorsFilter(app.getHttpAdapter()))`.
 */
@Catch()
export class ClientErrorsFilter extends BaseExceptionFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    const client = clientHttpError(exception);
    if (!client) return super.catch(exception, host);
    const { status, message } = client;
    const body = HttpException.createBody(message, STATUS_CODES[status]!, status);
    super.catch(new HttpException(body, status), host);
  }
}
