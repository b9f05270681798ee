import type { INestApplication } from '@nestjs/common';
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';

function jsonBody(status: number, message: string): string {
  return JSON.stringify({ statusCode: status, error: STATUS_CODES[status], message });
}

/** Node's default headersTimeout, for a server that disabled it (0). */
const DEFAULT_HEADERS_TIMEOUT_MS = 60_000;

/** Node's own answer is 408 for a request not received within headersTimeout/requestTimeout. */
function clientErrorAnswer(code: string | undefined): [number, string] {
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'request headers too large'];
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'request not received in time'];
  return [400, 'malformed request'];
}

/**
 * Closes an answered connection the way RFC 9112 §9.6 asks: the answer and our FIN are out
 * (`end`), the rest of the request is read and dropped (Node's parser goes on consuming it), and
 * the socket closes once the client has closed its side. Destroying it instead, with the rest of
 * a large request unread, makes the kernel send a reset that can destroy the answer: the client's
 * pending write fails first, or the reset overtakes an answer not yet sent. A client that neither
 * finishes nor closes gets no longer than any client gets for its headers.
 */
function closeAfterClient(socket: Socket, server: Server): void {
  const deadline = setTimeout(
    () => socket.destroy(),
    server.headersTimeout || DEFAULT_HEADERS_TIMEOUT_MS,
  );
  socket.once('close', () => clearTimeout(deadline));
}

/**
 * Makes the requests Node's HTTP parser rejects before any app code runs answer with the same
 * JSON shape as Nest's own errors: oversized or malformed headers (431/400), a request not
 * received within the server's headersTimeout/requestTimeout (408). Errors of the body parser
 * (400, 413) reach Nest's exception handling instead: see `ClientErrorsFilter`.
 */
export function installJsonHttpErrors(app: INestApplication): void {
  const server = app.getHttpServer() as Server;
  // A failed parser stays failed: Node reports the same error again for every later chunk of the
  // request and at the client's end. Only the first one is answered; the others are expected.
  const answered = new WeakSet<Socket>();
  // This answer replaces the platform's own: Fastify's writes a JSON error too, then destroys the
  // socket at once (the reset this function avoids). Express leaves Node's default.
  server.removeAllListeners('clientError');
  server.on('clientError', (error: { code?: string }, socket: Socket) => {
    if (answered.has(socket)) return;
    if (!socket.writable) return socket.destroy();
    answered.add(socket);
    const [status, message] = clientErrorAnswer(error.code);
    const body = jsonBody(status, message);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    closeAfterClient(socket, server);
  });
}
