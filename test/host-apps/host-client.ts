import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createGunzip } from 'node:zlib';

export interface HostAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
}

/** Where a started host app can be reached. */
export type Endpoint =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string }
  | { kind: 'https'; host: string; port: number; ca: string };

/** The body stream of an answer, gunzipped when the server compressed it (as a browser does). */
function bodyOf(res: IncomingMessage): NodeJS.ReadableStream {
  return res.headers['content-encoding'] === 'gzip' ? res.pipe(createGunzip()) : res;
}

/**
 * A client that reaches a host app however it listens (TCP on any interface, a unix socket,
 * HTTPS with its self-signed certificate), sending the configuration's own headers.
 */
export class HostClient {
  constructor(
    private readonly endpoint: Endpoint,
    private readonly defaults: Record<string, string> = {},
  ) {}

  private open(
    method: string,
    path: string,
    headers: Record<string, string>,
    onResponse: (res: IncomingMessage) => void,
  ) {
    const options = { method, path, headers: { ...this.defaults, ...headers } };
    const e = this.endpoint;
    if (e.kind === 'unix') return httpRequest({ ...options, socketPath: e.path }, onResponse);
    if (e.kind === 'https') {
      return httpsRequest({ ...options, host: e.host, port: e.port, ca: e.ca }, onResponse);
    }
    return httpRequest({ ...options, host: e.host, port: e.port }, onResponse);
  }

  send(
    method: string,
    path: string,
    options: { headers?: Record<string, string>; json?: unknown } = {},
  ): Promise<HostAnswer> {
    const headers = { ...options.headers };
    const body = options.json === undefined ? undefined : JSON.stringify(options.json);
    if (body !== undefined) headers['content-type'] = 'application/json';
    return new Promise((resolve, reject) => {
      const req = this.open(method, path, headers, (res) => {
        let text = '';
        const stream = bodyOf(res);
        stream.setEncoding('utf8');
        stream.on('data', (chunk: string) => (text += chunk));
        stream.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text }),
        );
        stream.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  get(path: string, headers: Record<string, string> = {}): Promise<HostAnswer> {
    return this.send('GET', path, { headers });
  }

  /** Opens an SSE stream; `next(match)` resolves with the first event that matches. */
  async stream(path: string): Promise<SseStream> {
    return new Promise((resolve, reject) => {
      const req = this.open('GET', path, { accept: 'text/event-stream' }, (res) =>
        resolve(new SseStream(res, () => req.destroy())),
      );
      req.on('error', reject);
      req.end();
    });
  }
}

export class SseStream {
  readonly events: SseEvent[] = [];
  private pending = '';
  private waiters: (() => void)[] = [];

  constructor(
    readonly res: IncomingMessage,
    readonly close: () => void,
  ) {
    const body = bodyOf(res);
    body.setEncoding('utf8');
    body.on('data', (chunk: string) => this.feed(chunk));
    body.on('error', () => undefined);
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  private feed(chunk: string): void {
    this.pending += chunk.replace(/\r\n/g, '\n');
    let end: number;
    while ((end = this.pending.indexOf('\n\n')) >= 0) {
      const block = this.pending.slice(0, end);
      this.pending = this.pending.slice(end + 2);
      const event: SseEvent = {};
      for (const line of block.split('\n')) {
        const match = /^(id|event|data): ?(.*)$/.exec(line);
        if (match) {
          const field = match[1] as keyof SseEvent;
          event[field] =
            field === 'data' && event.data !== undefined ? `${event.data}\n${match[2]}` : match[2];
        }
      }
      if (event.data !== undefined || event.id !== undefined) this.events.push(event);
    }
    for (const wake of this.waiters.splice(0)) wake();
  }

  async next(match: (event: SseEvent) => boolean, timeoutMs = 10_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching event; got ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
