import { execSync } from 'node:child_process';
import { request } from 'node:http';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { createBenchDatabase } from '../lib/bench-database';
import type { ClientStatus, Collected, ResponseSample } from '../lib/held-polls-client';
import { Child, clock } from '../lib/child';
import type { LagReport } from '../lib/held-polls-probes';
import {
  type BenchResult,
  type Scenario,
  type BenchRow,
  type Figure,
  figureOf,
  median,
} from '../lib/report';

export interface HeldPollsOptions {
  /** Server to bench on; a fresh database is created there and dropped afterwards. */
  serverUrl: string;
  /** Runs of the fan-out row; also of the held row unless `heldRuns` is set. */
  runs: number;
  /** Runs of the held row (BENCH_HELD_RUNS). */
  heldRuns?: number;
  /** Held long polls to reach (BENCH_HELD, default 19,000). */
  held?: number;
  /** Waiters one change wakes (BENCH_FANOUT, default 10,000). */
  fanOut?: number;
  /** Client processes the polls are spread over (BENCH_HELD_CLIENTS, default 4). */
  clientProcesses?: number;
  /** How long the event-loop lag is sampled while the polls wait, in s (BENCH_HELD_LAG_S, 5). */
  lagWindowS?: number;
  log?: (line: string) => void;
}

/** `app`: the polling app on Express; `fastify`: the same app on Fastify; `raw`: node:http. */
type Kind = 'app' | 'raw' | 'fastify';
const isApp = (kind: Kind) => kind !== 'raw';

interface Server {
  kind: Kind;
  child: Child;
  url: string;
}

type Lag = LagReport;

interface Memory {
  before: NodeJS.MemoryUsage;
  after: NodeJS.MemoryUsage;
  gc: boolean;
}

interface Ramp {
  reached: number;
  ms: number;
  /** Why the ramp stopped short, when it did. */
  stalled?: string;
}

interface HeldSample {
  kind: Kind;
  target: number;
  reached: number;
  /** Held count reported by the server at the end of the lag window (HeldRequests.size). */
  heldAtEnd: number;
  feedsAtEnd?: number;
  rampMs: number;
  stalled?: string;
  rssIdleMB: number;
  rssHeldMB: number;
  /** (RSS with N held − RSS idle) / N, both after a forced full GC. */
  perHeldKB: number;
  /** The same without the forced GC before the held reading. */
  perHeldNoGcKB: number;
  perHeldHeapKB: number;
  /** V8 heap committed (heapTotal) per held poll: the part of RSS that is JS heap. */
  perHeldHeapTotalKB: number;
  waitLag: Lag;
  rampLag: Lag;
  /** Responses the clients got before they were reset (long polls must not have been answered). */
  answeredEarly: Record<string, number>;
  clientErrors: Record<string, number>;
  /** Held requests the server still counted after every client socket was reset. */
  releaseIssue?: string;
}

interface FanOutSample {
  kind: Kind;
  waiters: number;
  /** Commit (app: the INSERT acknowledged; raw: the trigger sent) → last response received. */
  lastMs: number;
  firstMs: number;
  p50Ms: number;
  statuses: Record<string, number>;
  withChange: number;
  /** App: commit → the change notice on the bus (the reader's part). */
  noticeMs?: number;
  /** App: commit → the (one) handler run started. */
  handlerMs?: number;
  handlerRuns?: number;
  aggregatorRuns?: number;
  aggregatorJoined?: number;
  rawLoopMs?: number;
  lagDuring: Lag;
  rampMs: number;
  releaseIssue?: string;
}

const AUTH = 'Bearer held-polls-bench';
const HEADERS = { Authorization: AUTH };
/** Feeds the held polls are spread over (`/runs/0 … /runs/999`). */
const HELD_FEEDS = 1000;
/** Requested hold: ≥ 60 s, so nothing times out while the bench looks. */
const HELD_WAIT_S = 90;
const FANOUT_WAIT_S = 60;
/** New polls per round of the ramp, over all client processes; the next round waits for these. */
const ROUND = 2000;
/** The ramp gives up when the held count has not grown for this long. */
const STALL_MS = 10_000;
const WARMUP = 200;
/** Wait after the forced GCs of a memory reading, for V8 to return freed pages to the OS. */
const SETTLE_MS = 500;
const childFile = (name: string) => join(__dirname, '..', 'lib', `${name}.ts`);
/**
 * The children run as plain JavaScript, like a deployed app: with a compiler in every process,
 * its heap swamps an RSS difference of a few KB per held poll (child-loaders.ts).
 */
const LOADER = 'compiled';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const MB = 1024 * 1024;

function envNumber(name: string): number | undefined {
  const value = process.env[name];
  return value ? Number(value) : undefined;
}

/** A request over a connection of its own (agent: false), JSON in and out. */
function call(
  url: string,
  method = 'GET',
  body?: string,
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, headers: HEADERS }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function headCursor(server: Server, run: number): Promise<string> {
  const res = await call(`${server.url}/runs/${run}/changes`);
  if (res.status !== 200) throw new Error(`head of run ${run}: ${res.status} ${res.body}`);
  return (JSON.parse(res.body) as { cursor: string }).cursor;
}

async function startServer(kind: Kind, databaseUrl: string): Promise<Server> {
  const child = await Child.start<{ url: string }>(
    `${kind} server`,
    childFile(isApp(kind) ? 'held-polls-app' : 'held-polls-raw'),
    {
      loader: LOADER,
      args: kind === 'app' ? [databaseUrl] : kind === 'fastify' ? [databaseUrl, 'fastify'] : [],
      nodeArgs: ['--expose-gc'],
    },
  );
  return { kind, child, url: child.info.url };
}

const heldCount = async (server: Server) =>
  (await server.child.request<{ held: number }>('stats')).held;

/** Waits until the server's held count satisfies `ok`; false when it stops moving for STALL_MS. */
async function waitHeld(server: Server, ok: (held: number) => boolean): Promise<boolean> {
  let last = -1;
  let since = Date.now();
  for (;;) {
    const held = await heldCount(server);
    if (ok(held)) return true;
    if (held !== last) {
      last = held;
      since = Date.now();
    } else if (Date.now() - since > STALL_MS) {
      return false;
    }
    await sleep(15);
  }
}

/** The poll clients: several processes, each with its own source address. */
class Clients {
  /** Requests opened per process since the last reset. */
  private opened: number[];

  private constructor(private readonly procs: Child[]) {
    this.opened = procs.map(() => 0);
  }

  static async start(count: number): Promise<Clients> {
    const procs = await Promise.all(
      Array.from({ length: count }, (_, k) =>
        Child.start(`poll client ${k}`, childFile('held-polls-client'), {
          loader: LOADER,
          args: [`127.0.0.${11 + k}`],
        }),
      ),
    );
    return new Clients(procs);
  }

  /** GETs `paths`, spread round-robin over the processes; resolves when all have connected. */
  async open(origin: string, paths: string[]): Promise<{ connected: number; failed: number }> {
    const share = this.procs.map((_, k) => paths.filter((_, i) => i % this.procs.length === k));
    const results = await Promise.all(
      this.procs.map((proc, k) =>
        proc.request<{ connected: number; failed: number }>('open', {
          origin,
          paths: share[k],
          headers: HEADERS,
        }),
      ),
    );
    share.forEach((s, k) => (this.opened[k] += s.length));
    return {
      connected: results.reduce((n, r) => n + r.connected, 0),
      failed: results.reduce((n, r) => n + r.failed, 0),
    };
  }

  /** Waits for every opened request's response (up to `timeoutMs`). */
  collect(timeoutMs: number, match?: string): Promise<Collected[]> {
    return Promise.all(
      this.procs.map((proc, k) =>
        proc.request<Collected>(
          'collect',
          { expected: this.opened[k], timeoutMs, match },
          timeoutMs + 10_000,
        ),
      ),
    );
  }

  status(): Promise<ClientStatus[]> {
    return Promise.all(this.procs.map((proc) => proc.request<ClientStatus>('status')));
  }

  async forget(): Promise<void> {
    await Promise.all(this.procs.map((proc) => proc.request('forget')));
    this.opened = this.procs.map(() => 0);
  }

  async reset(): Promise<void> {
    await Promise.all(this.procs.map((proc) => proc.request('reset')));
    this.opened = this.procs.map(() => 0);
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((proc) => proc.stop()));
  }
}

function merge(maps: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const map of maps) for (const [k, v] of Object.entries(map)) out[k] = (out[k] ?? 0) + v;
  return out;
}

/** Opens `paths` in rounds of ROUND, each round waiting until the server holds them. */
async function hold(server: Server, clients: Clients, paths: string[]): Promise<Ramp> {
  const started = clock();
  const base = await heldCount(server); // 0, unless an earlier release left some behind
  for (let opened = 0; opened < paths.length;) {
    const batch = paths.slice(opened, opened + ROUND);
    await clients.open(server.url, batch);
    opened += batch.length;
    const target = base + opened;
    if (!(await waitHeld(server, (held) => held >= target))) {
      const status = await clients.status();
      const reached = (await heldCount(server)) - base;
      return {
        reached,
        ms: clock() - started,
        stalled:
          `held count stuck at ${reached} of ${target - base} for ${STALL_MS / 1000} s; clients: ` +
          `${status.reduce((n, s) => n + s.sockets, 0)} sockets, answered early ` +
          `${JSON.stringify(merge(status.map((s) => s.statuses)))}, errors ` +
          `${JSON.stringify(merge(status.map((s) => s.errors)))}`,
      };
    }
  }
  return { reached: (await heldCount(server)) - base, ms: clock() - started };
}

/**
 * Lets go of every held request: the clients forget them, the server closes every connection
 * (see held-polls-probes.ts trackConnections), and the server's held count must drop to 0. Returns
 * what is left when it does not, for the notes.
 */
async function release(server: Server, clients: Clients): Promise<string | undefined> {
  await clients.forget();
  await server.child.request('disconnect');
  const released = await waitHeld(server, (held) => held === 0);
  const stats = await server.child.request<Record<string, number>>('stats');
  await clients.reset(); // closes what the server's close left open on the client side (nothing)
  if (released) return undefined;
  return (
    `${server.kind} server still counted ${stats.held} held requests ${STALL_MS / 1000} s after ` +
    `it closed every connection (server stats ${JSON.stringify(stats)})`
  );
}

const heldPaths = (count: number, cursor: string) =>
  Array.from(
    { length: count },
    (_, i) => `/runs/${i % HELD_FEEDS}/changes?since=${cursor}&wait=${HELD_WAIT_S}`,
  );

/** A cursor of the app's shape for the raw server (which ignores it), so requests match in size. */
let appCursor = 'a0a0a0a0a0.0.AAAAAAAAAAA';

async function measureHeld(
  kind: Kind,
  databaseUrl: string,
  clients: Clients,
  target: number,
  lagWindowS: number,
): Promise<HeldSample> {
  const server = await startServer(kind, databaseUrl);
  try {
    if (isApp(kind)) appCursor = await headCursor(server, 0);
    // Warm-up: the code paths of holding and letting go run once before the idle reading.
    await hold(server, clients, heldPaths(WARMUP, appCursor));
    const warmupIssue = await release(server, clients);
    const idle = await server.child.request<Memory>('memory', { gc: true, settleMs: SETTLE_MS });
    // Diagnostics: BENCH_HELD_HEAP_DIR=dir writes heap snapshots idle and held (bench/lib/heap-diff.ts).
    const heapDir = process.env.BENCH_HELD_HEAP_DIR;
    const snapshot = (state: string) =>
      heapDir
        ? server.child.request(
            'heapSnapshot',
            { file: join(heapDir, `${kind}-${state}.heapsnapshot`) },
            300_000,
          )
        : undefined;
    await snapshot('idle');

    await server.child.request('lagReset');
    const ramp = await hold(server, clients, heldPaths(target, appCursor));
    const rampLag = await server.child.request<Lag>('lagReport');
    await sleep(500);
    await server.child.request('lagReset');
    await sleep(lagWindowS * 1000);
    const waitLag = await server.child.request<Lag>('lagReport');
    const stats = await server.child.request<{ held: number; feeds?: number }>('stats');
    const full = await server.child.request<Memory>('memory', { gc: true, settleMs: SETTLE_MS });
    await snapshot(`held-${ramp.reached}`);
    const status = await clients.status();
    const releaseIssue = await release(server, clients);

    const per = (after: number, before: number) => (after - before) / ramp.reached / 1024;
    return {
      kind,
      target,
      reached: ramp.reached,
      heldAtEnd: stats.held,
      feedsAtEnd: stats.feeds,
      rampMs: ramp.ms,
      stalled: ramp.stalled,
      rssIdleMB: idle.after.rss / MB,
      rssHeldMB: full.after.rss / MB,
      perHeldKB: per(full.after.rss, idle.after.rss),
      perHeldNoGcKB: per(full.before.rss, idle.after.rss),
      perHeldHeapKB: per(full.after.heapUsed, idle.after.heapUsed),
      perHeldHeapTotalKB: per(full.after.heapTotal, idle.after.heapTotal),
      waitLag,
      rampLag,
      answeredEarly: merge(status.map((s) => s.statuses)),
      clientErrors: merge(status.map((s) => s.errors)),
      releaseIssue: [warmupIssue, releaseIssue].filter(Boolean).join('; ') || undefined,
    };
  } finally {
    await clients.reset().catch(() => undefined);
    await server.child.stop();
  }
}

/** The app's answer to a fan-out, copied by the raw server (headers Node sets itself removed). */
let appAnswer: { headers: Record<string, unknown>; body: unknown; id: string } | null = null;

function rememberAnswer(sample: ResponseSample | null): void {
  if (!sample || sample.status !== 200) return;
  const headers = { ...sample.headers } as Record<string, unknown>;
  for (const h of ['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding'])
    delete headers[h];
  const body = JSON.parse(sample.body) as { changes: { id: string }[] };
  appAnswer = { headers, body, id: body.changes[0]?.id ?? '' };
}

async function fanOutOnce(
  server: Server,
  clients: Clients,
  writer: Client,
  waiters: number,
  partition: number,
): Promise<FanOutSample> {
  const cursor = isApp(server.kind) ? await headCursor(server, partition) : appCursor;
  const paths = Array.from(
    { length: waiters },
    () => `/runs/${partition}/changes?since=${cursor}&wait=${FANOUT_WAIT_S}`,
  );
  const ramp = await hold(server, clients, paths);
  if (ramp.reached < waiters) throw new Error(`fan-out: ${server.kind}: ${ramp.stalled}`);
  type Counters = {
    handlerRuns?: number;
    aggregatorRuns?: number;
    aggregatorJoined?: number;
    lastNoticeAt?: number;
    lastHandlerAt?: number;
  };
  const before = await server.child.request<Counters>('counters');
  await sleep(300);
  await server.child.request('lagReset');
  // Diagnostics: BENCH_HELD_PROFILE_DIR=dir writes a CPU profile of each fan-out (it slows it down).
  const profileDir = process.env.BENCH_HELD_PROFILE_DIR;
  if (profileDir) await server.child.request('profileStart');

  let t0: number;
  let id: string;
  let rawLoopMs: number | undefined;
  if (isApp(server.kind)) {
    const { rows } = await writer.query<{ id: string }>(
      "INSERT INTO items (run, body) VALUES ($1, 'fan-out') RETURNING id::text AS id",
      [partition],
    );
    t0 = clock(); // the commit acknowledged to the writer
    id = rows[0].id;
  } else {
    if (!appAnswer) throw new Error('fan-out: no app answer to copy yet');
    id = appAnswer.id;
    t0 = clock();
    const fired = await call(
      `${server.url}/fire`,
      'POST',
      JSON.stringify({ headers: appAnswer.headers, body: appAnswer.body }),
    );
    rawLoopMs = (JSON.parse(fired.body) as { loopMs: number }).loopMs;
  }
  const collected = await clients.collect(30_000, `"id":"${id}"`);
  const lagDuring = await server.child.request<Lag>('lagReport');
  if (profileDir) {
    const file = join(profileDir, `fan-out-${server.kind}-${waiters}-${partition}.cpuprofile`);
    await server.child.request('profileStop', { file });
  }
  const after = await server.child.request<Counters>('counters');
  if (server.kind === 'app') rememberAnswer(collected.find((c) => c.sample)?.sample ?? null);
  const releaseIssue = await release(server, clients);

  const times = collected.flatMap((c) => c.times);
  const delta = (k: 'handlerRuns' | 'aggregatorRuns' | 'aggregatorJoined') =>
    after[k] === undefined ? undefined : after[k]! - (before[k] ?? 0);
  return {
    kind: server.kind,
    waiters,
    lastMs: Math.max(...times) - t0,
    firstMs: Math.min(...times) - t0,
    p50Ms: median(times) - t0,
    statuses: merge(collected.map((c) => c.statuses)),
    withChange: collected.reduce((n, c) => n + c.matched, 0),
    handlerRuns: delta('handlerRuns'),
    aggregatorRuns: delta('aggregatorRuns'),
    aggregatorJoined: delta('aggregatorJoined'),
    noticeMs: after.lastNoticeAt ? after.lastNoticeAt - t0 : undefined,
    handlerMs: after.lastHandlerAt ? after.lastHandlerAt - t0 : undefined,
    rawLoopMs,
    lagDuring,
    rampMs: ramp.ms,
    releaseIssue,
  };
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const list = (values: number[], digits = 1) => values.map((v) => fmt(v, digits)).join(', ');

/**
 * Held long polls and fan-out (issue 7): 19,000 held polls on one app process (RSS per held poll,
 * event-loop lag) and one change waking 10,000 waiters, each beside a raw node:http server doing
 * the same in the same run, with the poll clients in separate processes.
 */
export async function heldPolls(opts: HeldPollsOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const target = opts.held ?? envNumber('BENCH_HELD') ?? 19_000;
  const fanOut = opts.fanOut ?? envNumber('BENCH_FANOUT') ?? 10_000;
  const heldRuns = opts.heldRuns ?? envNumber('BENCH_HELD_RUNS') ?? opts.runs;
  const processes = opts.clientProcesses ?? envNumber('BENCH_HELD_CLIENTS') ?? 4;
  const lagWindowS = opts.lagWindowS ?? envNumber('BENCH_HELD_LAG_S') ?? 5;
  const fdLimit = execSync('ulimit -n', { shell: '/bin/sh' }).toString().trim();
  const started = Date.now();

  const db = await createBenchDatabase(opts.serverUrl);
  const writer = new Client({ connectionString: db.url });
  let clients: Clients | null = null;
  const servers: Server[] = [];
  try {
    await writer.connect();
    await writer.query(
      'CREATE TABLE items (id bigserial PRIMARY KEY, run int NOT NULL DEFAULT 0, body text)',
    );
    clients = await Clients.start(processes);

    // Row 1: held polls. A fresh server process per run; the order alternates (app first in run 1,
    // which also gives the raw server the app's cursor shape).
    const held: Record<Kind, HeldSample[]> = { app: [], raw: [], fastify: [] };
    const kinds: Kind[] = ['app', 'raw', 'fastify'];
    for (let run = 0; run < heldRuns; run++) {
      const order = kinds.map((_, k) => kinds[(k + run) % kinds.length]);
      for (const kind of order) {
        const s = await measureHeld(kind, db.url, clients, target, lagWindowS);
        held[kind].push(s);
        log(
          `held-polls: run ${run + 1}, ${kind}: ${s.reached}/${target} held in ${fmt(s.rampMs / 1000)} s` +
            `${s.stalled ? ` (${s.stalled})` : ''}, ${s.heldAtEnd} still held after the ${lagWindowS} s window; ` +
            `RSS ${fmt(s.rssIdleMB)} → ${fmt(s.rssHeldMB)} MB = ${fmt(s.perHeldKB, 2)} KB/poll ` +
            `(heap ${fmt(s.perHeldHeapKB, 2)} KB, no-GC RSS ${fmt(s.perHeldNoGcKB, 2)} KB); ` +
            `lag p99 ${fmt(s.waitLag.p99, 2)} ms waiting, ${fmt(s.rampLag.p99, 2)} ms ramping`,
        );
      }
    }

    // Row 2: fan-out. One server process of each kind for all runs, a fresh feed per run.
    const app = await startServer('app', db.url);
    servers.push(app);
    const raw = await startServer('raw', db.url);
    servers.push(raw);
    const fastify = await startServer('fastify', db.url);
    servers.push(fastify);
    appCursor = await headCursor(app, 0);
    // Warm-up round on both (not recorded): JIT, the handler's pool connection, the answer to copy.
    await fanOutOnce(app, clients, writer, WARMUP, 2_000_000);
    await fanOutOnce(raw, clients, writer, WARMUP, 2_000_001);
    await fanOutOnce(fastify, clients, writer, WARMUP, 2_000_002);
    const fan: Record<Kind, FanOutSample[]> = { app: [], raw: [], fastify: [] };
    const fanServers = [app, raw, fastify];
    for (let run = 0; run < opts.runs; run++) {
      const order = fanServers.map((_, k) => fanServers[(k + run) % fanServers.length]);
      for (const server of order) {
        const s = await fanOutOnce(server, clients, writer, fanOut, 1_000_000 + run);
        fan[server.kind].push(s);
        log(
          `held-polls: fan-out run ${run + 1}, ${server.kind}: ${s.waiters} waiters, last response ` +
            `${fmt(s.lastMs)} ms after the ${isApp(server.kind) ? 'commit' : 'trigger'} ` +
            `(first ${fmt(s.firstMs)}, p50 ${fmt(s.p50Ms)}), ${JSON.stringify(s.statuses)}, ` +
            `${s.withChange} with the change` +
            (s.handlerRuns === undefined
              ? `, send loop ${fmt(s.rawLoopMs ?? 0)} ms`
              : `, change notice at ${fmt(s.noticeMs ?? NaN)} ms, handler run at ${fmt(s.handlerMs ?? NaN)} ms, ` +
                `handler runs ${s.handlerRuns}, aggregator runs ${s.aggregatorRuns} joined ${s.aggregatorJoined}`) +
            `, event loop blocked up to ${fmt(s.lagDuring.max)} ms`,
        );
      }
    }

    const rows = buildRows(held, fan, target, fanOut);
    const seconds = (Date.now() - started) / 1000;
    return {
      rows,
      notes: notes(held, fan, {
        target,
        fanOut,
        heldRuns,
        runs: opts.runs,
        processes,
        lagWindowS,
        fdLimit,
        seconds,
      }),
    };
  } finally {
    await clients?.reset().catch(() => undefined);
    for (const server of servers) await server.child.stop();
    await clients?.stop();
    await writer.end().catch(() => undefined);
    await db.drop();
  }
}

function buildRows(
  held: Record<Kind, HeldSample[]>,
  fan: Record<Kind, FanOutSample[]>,
  target: number,
  fanOut: number,
): BenchRow[] {
  const n = target.toLocaleString('en-US');
  const bench = 'held-polls';
  const rows: BenchRow[] = [];
  if (held.app.length && held.raw.length) {
    const allHeld = held.app.every((s) => s.reached >= target && s.heldAtEnd >= target);
    const pair = (
      row: string,
      unit: string,
      pick: (s: HeldSample) => number,
      label: string,
      goal: string,
      met: (f: Figure, ratio: number) => boolean,
    ): BenchRow => {
      const figure = figureOf(held.app.map(pick));
      const baseline = figureOf(held.raw.map(pick));
      const ratio = figure.median / baseline.median;
      return {
        bench,
        row,
        unit,
        figure,
        baseline: { label, ...baseline },
        ratio,
        goal,
        met: met(figure, ratio),
      };
    };
    rows.push(
      {
        bench,
        row: 'held long polls on one app process (HeldRequests.size after the lag window)',
        unit: 'polls',
        figure: figureOf(held.app.map((s) => s.heldAtEnd)),
        baseline: { label: 'raw node:http', ...figureOf(held.raw.map((s) => s.heldAtEnd)) },
        goal: `${n} held`,
        met: allHeld,
        details: { target, app: held.app, raw: held.raw },
      },
      pair(
        `RSS per held long poll, ${n} held`,
        'KB',
        (s) => s.perHeldKB,
        'raw node:http, parked',
        '≤ 2.50×',
        (_f, ratio) => ratio <= 2.5 && allHeld,
      ),
      pair(
        `event-loop lag p99 while ${n} polls wait`,
        'ms',
        (s) => s.waitLag.p99,
        'raw node:http',
        'p99 < 20 ms',
        (f) => f.max < 20 && allHeld,
      ),
    );
  }
  if (fan.app.length && fan.raw.length) {
    const figure = figureOf(fan.app.map((s) => s.lastMs));
    const baseline = figureOf(fan.raw.map((s) => s.lastMs));
    const ratio = figure.median / baseline.median;
    const complete = fan.app.every(
      (s) => s.statuses['200'] === s.waiters && s.withChange === s.waiters,
    );
    const runs = fan.app.map((s) => s.handlerRuns ?? NaN);
    const waiters = fanOut.toLocaleString('en-US');
    rows.push(
      {
        bench,
        row: `fan-out: commit → last of ${waiters} responses`,
        unit: 'ms',
        figure,
        baseline: { label: 'raw node:http, one loop', ...baseline },
        ratio,
        goal: '≤ 1.50×',
        met: ratio <= 1.5 && complete,
        details: { app: fan.app, raw: fan.raw },
      },
      {
        bench,
        row: `fan-out: handler runs for the change, ${waiters} waiters`,
        unit: 'runs',
        figure: figureOf(runs),
        goal: '= 1',
        met: runs.every((r) => r === 1),
      },
    );
  }
  rows.push(...fastifyRows(held, fan, n, fanOut.toLocaleString('en-US')));
  return rows;
}

/** The same app on Fastify against Express, in the same run (issue 19). */
function fastifyRows(
  held: Record<Kind, HeldSample[]>,
  fan: Record<Kind, FanOutSample[]>,
  n: string,
  waiters: string,
): BenchRow[] {
  const bench = 'held-polls';
  const rows: BenchRow[] = [];
  const versus = (
    row: string,
    unit: string,
    fastify: number[],
    express: number[],
    details: Record<string, unknown>,
  ): BenchRow => {
    const figure = figureOf(fastify);
    const baseline = figureOf(express);
    return {
      bench,
      row,
      unit,
      figure,
      baseline: { label: 'the same app on Express', ...baseline },
      ratio: figure.median / baseline.median,
      details,
    };
  };
  if (held.fastify.length && held.app.length) {
    rows.push(
      versus(
        `Fastify: RSS per held long poll, ${n} held`,
        'KB',
        held.fastify.map((s) => s.perHeldKB),
        held.app.map((s) => s.perHeldKB),
        { fastify: held.fastify },
      ),
    );
  }
  if (fan.fastify.length && fan.app.length) {
    rows.push(
      versus(
        `Fastify: fan-out, commit → last of ${waiters} responses`,
        'ms',
        fan.fastify.map((s) => s.lastMs),
        fan.app.map((s) => s.lastMs),
        { fastify: fan.fastify },
      ),
    );
  }
  return rows;
}

interface NoteContext {
  target: number;
  fanOut: number;
  heldRuns: number;
  runs: number;
  processes: number;
  lagWindowS: number;
  fdLimit: string;
  seconds: number;
}

function notes(
  held: Record<Kind, HeldSample[]>,
  fan: Record<Kind, FanOutSample[]>,
  o: NoteContext,
): string[] {
  const out: string[] = [];
  const cores = cpus().length;
  const med = (values: number[], digits = 1) => fmt(median(values), digits);
  if (held.app.length) {
    const { app, raw } = held;
    out.push(
      `Held polls: ${o.heldRuns} run(s)` +
        (o.heldRuns < 3 ? ` (fewer than the issue's 3: BENCH_HELD_RUNS=${o.heldRuns})` : '') +
        `, ${cores} cores, open-file limit ${o.fdLimit} per process; ` +
        `${o.target.toLocaleString('en-US')} GETs from ${o.processes} client processes.`,
      `Memory: app RSS ` +
        `${app.map((s) => `${fmt(s.rssIdleMB)} → ${fmt(s.rssHeldMB)}`).join(', ')} MB, raw ` +
        `${raw.map((s) => `${fmt(s.rssIdleMB)} → ${fmt(s.rssHeldMB)}`).join(', ')} MB. Per held ` +
        `poll (medians): app ${med(app.map((s) => s.perHeldKB))} KB RSS = ` +
        `${med(app.map((s) => s.perHeldHeapTotalKB))} KB V8 heap committed ` +
        `(${med(app.map((s) => s.perHeldHeapKB))} KB live JS objects) + the rest outside the ` +
        `heap; raw ${med(raw.map((s) => s.perHeldKB))} KB RSS, ` +
        `${med(raw.map((s) => s.perHeldHeapTotalKB))} KB heap committed ` +
        `(${med(raw.map((s) => s.perHeldHeapKB))} KB live).`,
      `Lag over ${o.lagWindowS} s once all were held: max app ${list(app.map((s) => s.waitLag.max))} ms, raw ` +
        `${list(raw.map((s) => s.waitLag.max))} ms. While the polls arrived (not a goal): p99 ` +
        `app ${list(app.map((s) => s.rampLag.p99))} ms, raw ${list(raw.map((s) => s.rampLag.p99))} ms; ` +
        `ramp to ${o.target.toLocaleString('en-US')} took app ${list(app.map((s) => s.rampMs / 1000))} s, ` +
        `raw ${list(raw.map((s) => s.rampMs / 1000))} s.`,
    );
    for (const s of [...app, ...raw].filter((x) => x.stalled))
      out.push(`${s.kind} server stopped at ${s.reached} held: ${s.stalled}.`);
    for (const s of app.filter((x) => Object.keys(x.answeredEarly).length))
      out.push(`App answered held polls early: ${JSON.stringify(s.answeredEarly)}.`);
  }
  for (const s of [...held.app, ...held.raw, ...fan.app, ...fan.raw].filter((x) => x.releaseIssue))
    out.push(`Release: ${s.releaseIssue}.`);
  if (fan.app.length) {
    const { app, raw } = fan;
    out.push(
      `Fan-out: ${o.runs} run(s) of ${o.fanOut.toLocaleString('en-US')} waiters. App: change ` +
        `notice ${list(app.map((s) => s.noticeMs ?? NaN))} ms after the commit, handler run at ` +
        `${list(app.map((s) => s.handlerMs ?? NaN))} ms, first response ` +
        `${list(app.map((s) => s.firstMs))} ms, p50 ${list(app.map((s) => s.p50Ms))} ms, last ` +
        `${list(app.map((s) => s.lastMs))} ms; statuses ` +
        `${app.map((s) => JSON.stringify(s.statuses)).join(' ')}, with the change ` +
        `${app.map((s) => s.withChange).join(', ')}; aggregator runs ` +
        `${app.map((s) => s.aggregatorRuns).join(', ')}, joined ` +
        `${app.map((s) => s.aggregatorJoined).join(', ')}. Raw: first ` +
        `${list(raw.map((s) => s.firstMs))} ms, last ${list(raw.map((s) => s.lastMs))} ms, send ` +
        `loop ${list(raw.map((s) => s.rawLoopMs ?? NaN))} ms. App event loop blocked up to ` +
        `${list(app.map((s) => s.lagDuring.max))} ms.`,
    );
  }
  out.push(`held-polls module: ${fmt(o.seconds, 0)} s.`);
  return out;
}

export const scenario: Scenario = { name: 'held-polls', run: heldPolls };
