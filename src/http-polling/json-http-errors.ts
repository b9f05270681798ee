import type { INestApplication } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { STATUS_CODES, type Server } from 'node:http';
import type { Socket } from 'node:net';

interface HttpishError {
  status?: number;
  statusCode?: number;
  expose?: boolean;
  message?: string;
  code?: string;
}

function jsonBody(status: number, message: string): string {
  return JSON.stringify({ statusCode: status, error: STATUS_CODES[status], message });
}

/** Node's own answer is 408 for a request not received within headersTimeout/requestTimeout. */
function clientErrorAnswer(code: string | undefined): [number, string] {
  if (code === 'HPE_HEADER_OVERFLOW') return [431, 'request headers too large'];
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return [408, 'request not received in time'];
  return [400, 'malformed request'];
}

/**
 * Makes the errors that happen before Nest sees a request answer with the same JSON shape as
 * Nest's own: a body that is not JSON (400), a body over the parser's limit (413), and requests
 * Node's HTTP parser rejects (oversized or malformed headers: 431/400; not received within the
 * server's headersTimeout/requestTimeout: 408). Call after `app.init()` (or `listen`), so the
 * error middleware sits behind the body parser.
 */
export function installJsonHttpErrors(app: INestApplication): void {
  app.use((error: HttpishError, _req: Request, res: Response, next: NextFunction) => {
    const status = error.status ?? error.statusCode ?? 500;
    if (res.headersSent || status < 400 || status >= 500) return next(error);
    const message = error.expose !== false && error.message ? error.message : STATUS_CODES[status]!;
    res.status(status).type('application/json').send(jsonBody(status, message));
  });
  const server = app.getHttpServer() as Server;
  server.on('clientError', (error: HttpishError, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    const [status, message] = clientErrorAnswer(error.code);
    const body = jsonBody(status, message);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
