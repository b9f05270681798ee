/**
 * Poll clients for bench/held-polls.ts, in a process of their own (several of them: one process
 * may open about 20k files here). node:http with one keep-alive Agent; commands over IPC:
 *
 *   open {origin, paths, headers}   a GET per path, all at once; answers when every socket has
 *                                   connected (or failed): {connected, failed}
 *   collect {expected, timeoutMs, match}
 *                                   waits until `expected` responses have ended; answers their
 *                                   statuses, receipt times (epoch ms, performance.timeOrigin +
 *                                   now()), how many bodies contain `match`, and one sample
 *   status                          open requests, ended responses, errors
 *   forget                          forget every request (a server closing them is no error)
 *   reset                           forget, and close every socket still open
 *
 * The bench lets the server close the connections (held-polls-app/raw `disconnect`): the client
 * ends are then closed passively and leave no TIME_WAIT behind, which would slow down every
 * later connect() from the same source address (tens of thousands of them per run). Closing from
 * the client with an RST instead was now and then not taken by the server under load.
 *
 * argv[2]: the local address to connect from (127.0.0.x: every client process gets its own
 * ephemeral port range).
 */
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { clock, serve } from './child';

const localAddress = process.argv[2] || undefined;

interface Ended {
  status: number;
  at: number;
  body: string;
}

export interface ResponseSample {
  status: number;
  headers: IncomingHttpHeaders;
  /** Bytes of the status line and headers as received. */
  headerBytes: number;
  body: string;
}

export interface Collected {
  count: number;
  statuses: Record<string, number>;
  times: number[];
  matched: number;
  sample: ResponseSample | null;
}

export interface ClientStatus {
  open: number;
  ended: number;
  statuses: Record<string, number>;
  errors: Record<string, number>;
  sockets: number;
}

const newAgent = () =>
  new Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: Infinity });

let agent = newAgent();
/** Requests of an older generation (before a reset) are ignored when they fail. */
let generation = 0;
const sockets = new Set<Socket>();
let open = 0;
let ended: Ended[] = [];
let errors: Record<string, number> = {};
let sample: ResponseSample | null = null;
let onEnded: (() => void) | null = null;

function count(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function statuses(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of ended) count(out, String(e.status));
  return out;
}

function openOne(origin: URL, path: string, headers: Record<string, string>): Promise<boolean> {
  const gen = generation;
  return new Promise((resolve) => {
    let settled = false;
    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      resolve(ok);
    };
    open++;
    const req = request(
      {
        host: origin.hostname,
        port: origin.port,
        path,
        method: 'GET',
        headers,
        agent,
        localAddress,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', () => undefined);
        res.on('end', () => {
          const at = clock();
          if (gen !== generation) return;
          open--;
          const body = Buffer.concat(chunks).toString('utf8');
          ended.push({ status: res.statusCode ?? 0, at, body });
          if (!sample) {
            const raw = res.rawHeaders;
            let headerBytes = `HTTP/1.1 ${res.statusCode} ${res.statusMessage}\r\n\r\n`.length;
            for (let i = 0; i < raw.length; i += 2)
              headerBytes += raw[i].length + raw[i + 1].length + 4;
            sample = { status: res.statusCode ?? 0, headers: res.headers, headerBytes, body };
          }
          onEnded?.();
        });
      },
    );
    req.on('socket', (socket: Socket) => {
      if (!sockets.has(socket)) {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      }
      if (socket.connecting) socket.once('connect', () => settle(true));
      else settle(true);
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (gen === generation) {
        open--;
        count(errors, error.code ?? error.message);
      }
      settle(false);
    });
    req.end();
  });
}

function forget() {
  generation++;
  open = 0;
  ended = [];
  errors = {};
  sample = null;
  onEnded = null;
  return { sockets: sockets.size };
}

const { ready } = serve({
  async open(args: { origin: string; paths: string[]; headers: Record<string, string> }) {
    const origin = new URL(args.origin);
    const results = await Promise.all(args.paths.map((p) => openOne(origin, p, args.headers)));
    const connected = results.filter(Boolean).length;
    return { connected, failed: results.length - connected };
  },

  async collect(args: { expected: number; timeoutMs: number; match?: string }): Promise<Collected> {
    if (ended.length < args.expected) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, args.timeoutMs);
        function done() {
          clearTimeout(timer);
          onEnded = null;
          resolve();
        }
        onEnded = () => ended.length >= args.expected && done();
      });
    }
    return {
      count: ended.length,
      statuses: statuses(),
      times: ended.map((e) => e.at),
      matched: args.match ? ended.filter((e) => e.body.includes(args.match!)).length : 0,
      sample,
    };
  },

  status(): ClientStatus {
    return { open, ended: ended.length, statuses: statuses(), errors, sockets: sockets.size };
  },

  forget,

  reset() {
    forget();
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    agent.destroy();
    agent = newAgent();
    return {};
  },
});

ready({ pid: process.pid, localAddress });
