import { Catch, ServiceUnavailableException, type ArgumentsHost } from '@nestjs/common';
import { ClientErrorsFilter } from '../../src';

/**
 * SQLSTATEs of a server that is unreachable, restarting or full (connection exceptions, shutdown,
 * "cannot connect now", too many connections), and the socket errors of one that is gone.
 */
const TRANSIENT_SQLSTATE = /^(08|57P0[123]$|53300$)/;
const SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'EPIPE']);
/** What pg and its pool throw, without a code, for a connection that ended or never opened. */
const CONNECTION_LOST = /^Connection terminated|timeout exceeded when trying to connect/;

function databaseUnavailable(exception: unknown): boolean {
  if (!(exception instanceof Error)) return false;
  // TypeORM wraps a failed query's driver error; a failed pool connect comes through as it is.
  const error = (exception as Error & { driverError?: Error }).driverError ?? exception;
  const code = (error as Error & { code?: unknown }).code;
  if (typeof code === 'string') return TRANSIENT_SQLSTATE.test(code) || SOCKET_ERRORS.has(code);
  return CONNECTION_LOST.test(error.message);
}

/** Seconds a client waits before trying again: a restart or a failover takes a few. */
const RETRY_AFTER_S = '2';

/**
 * The example's error answers: a database that is restarting or unreachable is 503 with
 * Retry-After (the client SDK waits and retries), not Nest's 500 "Internal server error"; the
 * rest as `ClientErrorsFilter` answers it.
 */
@Catch()
export class ExampleErrorsFilter extends ClientErrorsFilter {
  catch(exception: unknown, host: ArgumentsHost): void {
    if (!databaseUnavailable(exception)) return super.catch(exception, host);
    const response: unknown = host.switchToHttp().getResponse();
    this.applicationRef?.setHeader(response, 'Retry-After', RETRY_AFTER_S);
    super.catch(
      new ServiceUnavailableException('the database is unavailable; retry in a few seconds'),
      host,
    );
  }
}
