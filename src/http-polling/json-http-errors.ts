import type { INestApplication } from '@nestjs/common';
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';

function jsonBody(status: number, message: string): string {
  return JSON.stringify({ statusCode: status, error: STATUS_CODES[status], message });
}

/** How long a rejected connection may go on sending before it is cut. */
const LINGER_MS = 2000;

/** Node's own answer is 408 for a request not received within headersTimeout/requestTimeout. */
function clientErrorAnswer(code: string | undefined): [number, string] {
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'request headers too large'];
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'request not received in time'];
  return [400, 'malformed request'];
}

/**
 * Makes the requests Node's HTTP parser rejects before any app code runs answer with the same
 * JSON shape as Nest's own errors: oversized or malformed headers (431/400), a request not
 * received within the server's headersTimeout/requestTimeout (408). Errors of the body parser
 * (400, 413) reach Nest's exception handling instead: see `ClientErrorsFilter`.
 */
export function installJsonHttpErrors(app: INestApplication): void {
  const server = app.getHttpServer() as Server;
  server.on('clientError', (error: { code?: string }, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    const [status, message] = clientErrorAnswer(error.code);
    const body = jsonBody(status, message);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    // Close in stages (RFC 9112 §9.6): closing with the rest of a huge request still unread makes
    // the kernel send a reset, which can destroy the answer before the client has read it. Read and
    // drop what still comes until the client closes, for at most LINGER_MS.
    socket.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  });
}
