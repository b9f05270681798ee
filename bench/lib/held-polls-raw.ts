/**
 * The baseline for bench/held-polls.ts, in a process of its own: a raw node:http server that
 * parks every GET (with a timer for its `wait`, as a minimal long poll would) and answers every
 * parked response in one loop on POST /fire, writing the headers and body the bench sends (the
 * app's own answer). Listens on 127.0.0.1 with a backlog of 4096; IPC commands as the app's:
 * `stats` (parked responses), `disconnect`, `memory`, `lagReset` / `lagReport`, `exit`.
 */
import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { clock, serve } from './child';
import { probes, trackConnections } from './held-polls-probes';

interface Parked {
  res: ServerResponse;
  timer: NodeJS.Timeout;
}

/** What POST /fire carries: the answer to copy. */
interface FireBody {
  headers: OutgoingHttpHeaders;
  body: unknown;
}

const parked = new Set<Parked>();

function fire(req: IncomingMessage, res: ServerResponse): void {
  let text = '';
  req.setEncoding('utf8');
  req.on('data', (chunk: string) => (text += chunk));
  req.on('end', () => {
    const { headers, body } = JSON.parse(text) as FireBody;
    const started = clock();
    let answered = 0;
    // One loop over every parked response: the floor for "one change wakes N waiters".
    for (const p of parked) {
      clearTimeout(p.timer);
      parked.delete(p);
      const json = JSON.stringify(body);
      p.res.writeHead(200, { ...headers, 'Content-Length': Buffer.byteLength(json) });
      p.res.end(json);
      answered++;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ answered, loopMs: clock() - started }));
  });
}

const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/fire') return fire(req, res);
  const wait = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('wait') ?? 25);
  const p: Parked = {
    res,
    timer: setTimeout(() => {
      parked.delete(p);
      res.writeHead(204);
      res.end();
    }, wait * 1000),
  };
  parked.add(p);
  res.once('close', () => {
    clearTimeout(p.timer);
    parked.delete(p);
  });
});

const connections = trackConnections(server);

server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  const { ready } = serve(
    {
      ...probes,
      stats: () => ({ held: parked.size, connections: connections.count() }),
      disconnect: connections.disconnect,
      counters: () => ({}),
    },
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  ready({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pid: process.pid });
});
