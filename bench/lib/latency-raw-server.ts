/**
 * Child process of bench/latency.ts: the floor for commit-to-client latency. A pg client LISTENs
 * on one channel; the writer inserts and NOTIFYs (the row as JSON) in one transaction; a plain
 * node:http server parks long polls and answers all of them in one loop on each notification, and
 * writes one encoded event to every open SSE stream (`/events`). Same wire shape as the polling app
 * (`?since=&wait=`, `Poll-Cursor`, `{changes, cursor}`; SSE `id:` + `data:`), no framework, no
 * index, no query per answer.
 *   env: DATABASE_URL, RAW_CHANNEL
 */
import { createServer, type ServerResponse } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Client } from 'pg';
import { clock, serve } from './child';

const RAW_CHANNEL = process.env.RAW_CHANNEL ?? 'bench_raw_latency';

interface Parked {
  res: ServerResponse;
  since: number;
  timer: NodeJS.Timeout;
}

async function main(): Promise<void> {
  const pg = new Client({ connectionString: process.env.DATABASE_URL });
  await pg.connect();
  await pg.query(`LISTEN ${RAW_CHANNEL}`);

  /** Every change so far, as the JSON a client gets for it; changes[i] has sequence i + 1. */
  const changes: string[] = [];
  const parked = new Set<Parked>();
  const streams = new Set<ServerResponse>();
  let arrivals: number[] = [];

  const answer = (res: ServerResponse, since: number, bodies?: Map<number, string>) => {
    let body = bodies?.get(since);
    if (body === undefined) {
      body = `{"changes":[${changes.slice(since).join(',')}],"cursor":"${changes.length}"}`;
      bodies?.set(since, body);
    }
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'poll-cursor': String(changes.length),
    });
    res.end(body);
  };

  pg.on('notification', (n) => {
    const at = clock();
    const row = JSON.parse(n.payload!) as { id: number };
    arrivals.push(at, row.id);
    changes.push(JSON.stringify({ id: String(row.id), op: 'upsert', row }));
    // One loop over the parked responses; waiters with the same cursor share one body.
    const bodies = new Map<number, string>();
    for (const p of parked) {
      clearTimeout(p.timer);
      answer(p.res, p.since, bodies);
    }
    parked.clear();
    const event = `id: ${changes.length}\ndata: {"changes":[${changes[changes.length - 1]}],"cursor":"${changes.length}"}\n\n`;
    for (const res of streams) res.write(event);
  });

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    if (url.pathname !== '/changes') {
      res.writeHead(404).end();
      return;
    }
    const since = url.searchParams.get('since');
    if (since === null || Number(since) < changes.length) {
      answer(res, since === null ? changes.length : Number(since));
      return;
    }
    const waitMs = Number(url.searchParams.get('wait') ?? 25) * 1000;
    const p: Parked = {
      res,
      since: Number(since),
      timer: setTimeout(() => {
        parked.delete(p);
        res.writeHead(204, { 'poll-cursor': String(changes.length) }).end();
      }, waitMs),
    };
    parked.add(p);
    res.on('close', () => {
      clearTimeout(p.timer);
      parked.delete(p);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

  const loop = monitorEventLoopDelay({ resolution: 1 });
  let cpu = process.cpuUsage();
  let began = clock();
  const ipc = serve(
    {
      begin() {
        arrivals = [];
        loop.reset();
        loop.enable();
        cpu = process.cpuUsage();
        began = clock();
        return {};
      },
      end() {
        loop.disable();
        const used = process.cpuUsage(cpu);
        return {
          arrivals: Float64Array.from(arrivals),
          cpuShare: (used.user + used.system) / 1000 / (clock() - began),
          loopDelayMs: {
            p50: loop.percentile(50) / 1e6,
            p99: loop.percentile(99) / 1e6,
            max: loop.max / 1e6,
          },
        };
      },
    },
    async () => {
      for (const p of parked) clearTimeout(p.timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await pg.end();
    },
  );
  const { port } = server.address() as { port: number };
  ipc.ready({ url: `http://127.0.0.1:${port}` });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
