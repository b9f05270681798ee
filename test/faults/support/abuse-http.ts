import { Agent, request, type ClientRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** performance.now() when the answer was complete. */
  at: number;
}

export interface Exchange {
  answer: Promise<Answer>;
  /** Destroys the request and its socket (the client goes away). */
  abort(): void;
}

export interface ExchangeOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  agent: Agent;
  /** Give up (reject) after this long; the default waits as long as the server holds. */
  timeoutMs?: number;
}

/** One request over node:http (fetch does not suit a thousand concurrent sockets). */
export function exchange(url: string, options: ExchangeOptions): Exchange {
  const { method = 'GET', headers = {}, body, agent, timeoutMs } = options;
  const req = request(url, { method, headers, agent });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, at: now() }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
  });
  if (timeoutMs !== undefined) {
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
  }
  req.end(body);
  return { answer, abort: () => req.destroy() };
}

export const now = () => performance.now();

/** An agent that opens a fresh connection per request: no reuse of a socket the server closed. */
export const freshAgent = () => new Agent({ keepAlive: false, maxSockets: Infinity });

export interface RawAnswer {
  /** The status of the answer's status line, null when none came before the socket closed. */
  status: number | null;
  text: string;
  /** How long after connecting the socket closed. */
  closedAfterMs: number;
}

/** True once `text` holds a whole answer: its headers and Content-Length bytes of body. */
function complete(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  const length = /\r\ncontent-length: *(\d+)/i.exec(text);
  return end >= 0 && length !== null && text.length >= end + 4 + Number(length[1]);
}

/**
 * Collects what a raw socket receives until it closes (a reset after an answer is fine). With
 * `closeOnAnswer`, the client closes once a whole answer is in and stops sending the rest of its
 * request, as HTTP clients do.
 */
function collect(socket: Socket, started: number, closeOnAnswer = false): Promise<RawAnswer> {
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    text += chunk;
    if (closeOnAnswer && complete(text)) socket.destroy();
  });
  socket.on('error', () => undefined);
  return new Promise((resolve) =>
    socket.once('close', () => {
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: match ? Number(match[1]) : null, text, closedAfterMs: now() - started });
    }),
  );
}

/** Writes `bytes` on a fresh socket; resolves with the answer once it is in or the socket closed. */
export function rawExchange(port: number, bytes: string, timeoutMs = 5000): Promise<RawAnswer> {
  const socket = connect(port, '127.0.0.1');
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const done = collect(socket, now(), true).finally(() => clearTimeout(timer));
  socket.end(bytes);
  return done;
}

export interface SlowSocket {
  done: Promise<RawAnswer>;
  destroy(): void;
}

/**
 * Slowloris: sends `start`, then one more byte ('a') every `everyMs`, never finishing the request.
 * `done` resolves when the server closes the socket.
 */
export function slowSocket(port: number, start: string, everyMs: number): SlowSocket {
  const socket = connect(port, '127.0.0.1');
  const done = collect(socket, now());
  socket.write(start);
  const timer = setInterval(() => socket.writable && socket.write('a'), everyMs);
  void done.finally(() => clearInterval(timer));
  return { done, destroy: () => socket.destroy() };
}

/** Resolves when `req` can take more data, or is gone. */
function drained(req: ClientRequest): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      req.off('drain', done);
      req.off('close', done);
      resolve();
    };
    req.on('drain', done);
    req.on('close', done);
  });
}

/**
 * POSTs `body` in 64 KB slices, honouring backpressure, with a Content-Length or chunked. Stops
 * writing once the answer is in (the server may answer before the body ends).
 */
export async function postLarge(
  url: string,
  headers: Record<string, string>,
  body: Buffer,
  chunked: boolean,
  agent: Agent,
): Promise<Answer> {
  const length: Record<string, string> = chunked
    ? { 'transfer-encoding': 'chunked' }
    : { 'content-length': String(body.length) };
  const req = request(url, { method: 'POST', headers: { ...headers, ...length }, agent });
  let answered = false;
  const answer = new Promise<Answer>((resolve, reject) => {
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, at: now() }),
      );
      res.on('close', () => res.complete || reject(new Error('the answer was cut short')));
    });
    // Once the answer is in, a reset of the upload the server stopped reading is fine.
    req.on('error', (error) => (answered ? undefined : reject(error)));
  });
  void answer.catch(() => undefined); // awaited below; writing may fail first
  for (let offset = 0; offset < body.length && !answered && !req.destroyed; offset += 65536) {
    if (!req.write(body.subarray(offset, offset + 65536))) {
      await Promise.race([drained(req), answer.catch(() => undefined)]);
    }
  }
  if (!req.destroyed) req.end();
  return answer;
}

/** Runs `task(i)` for i < total with at most `concurrency` at a time. */
export async function pool(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
}
