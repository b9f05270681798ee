import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { createBenchDatabase } from '../lib/bench-database';
import { calibrate, Child, clock } from '../lib/child';
import { type Histogram, histogram, merge, record, summary } from '../lib/latency-histogram';
import { type BenchResult, type Scenario, type BenchRow, figureOf, median } from '../lib/report';

export interface LatencyOptions {
  /** Server to bench on; a fresh database is created there and dropped afterwards. */
  serverUrl: string;
  runs: number;
  /** Measured seconds of writing per run (default 10), after `warmupMs` of unmeasured writes. */
  seconds?: number;
  /** Committed changes per second (default 100). */
  rate?: number;
  /** Held long polls, or SSE subscribers, on the one feed (default 1,000). */
  waiters?: number;
  /** How the waiters follow the feed; each is measured against its own raw floor (default both). */
  transports?: Transport[];
  /** Client processes the waiters are spread over (default 1: the machine has 2 cores). */
  clientProcesses?: number;
  warmupMs?: number;
  /**
   * Also measure the polling app unsaturated (few waiters; reader busy at 100 changes/s, and idle
   * between changes at 4/s) to show where the time goes when the server has headroom. Default true.
   */
  light?: boolean;
  log?: (line: string) => void;
}

/** The unsaturated points: few waiters, reader busy (gate closed) and idle (NOTIFY wakes it). */
const LIGHT = [
  { label: 'reader busy', waiters: 10, rate: 100, seconds: 2, warmupMs: 500 },
  { label: 'reader idle between changes', waiters: 10, rate: 4, seconds: 3, warmupMs: 500 },
];

type Kind = 'polling' | 'raw';
/** As in lib/latency-clients.ts (a child process script, so not imported here). */
type Transport = 'long-poll' | 'sse';

/** The route each server follows the feed on, per transport. */
const PATHS: Record<Kind, Record<Transport, string>> = {
  polling: { 'long-poll': '/runs/1/changes', sse: '/runs/1/stream' },
  raw: { 'long-poll': '/changes', sse: '/events' },
};

type Summary = ReturnType<typeof summary>;

interface RunReport {
  kind: Kind;
  transport: Transport;
  /** Commit acknowledgement → client has the whole response, per delivered change per waiter. */
  total: Summary;
  /** Change reached the server (bus notice / LISTEN notification) → client has the response. */
  fromServer: Summary;
  /** Commit acknowledgement → change reached the server's bus (reader) or LISTEN connection. */
  toServer: Summary;
  delivered: number;
  expected: number;
  /** Deliveries of a change a waiter already had (or out of commit order). */
  repeats: number;
  caughtUp: number;
  responses: number;
  changesPerResponse: number;
  requests: number;
  /** Poll requests per second over the whole session (warm-up and drain included). */
  requestRate: number;
  statuses: Record<string, number>;
  errors: number;
  lastError: string;
  /** Fairness over the waiters (first client process): 200 answers each, longest silence. */
  answersPerWaiter: { min: number; p50: number; max: number };
  longestGapMs: { min: number; p50: number; max: number };
  serverCpuShare: number;
  /** CPU time of the client processes, in cores. */
  clientCpu: number;
  /** Busy share of the whole machine (all cores, /proc/stat) while the writer ran. */
  machineBusy: number;
  serverLoopDelayMs: { p50: number; p99: number; max: number };
  /** Polling app only: handler runs and reader batches per measured window. */
  handlerRuns?: number;
  readerBatches?: number;
  /** Measured changes, all changes written in the run (with warm-up), late starts, INSERT times. */
  writer: {
    changes: number;
    written: number;
    late: number;
    insertMsP50: number;
    insertMsMax: number;
    /** Acknowledgement time − the server's clock at the end of the INSERT (before its commit). */
    ackLagMsP50: number;
    ackLagMsMax: number;
  };
}

interface ClientReport {
  total: Histogram;
  fromServer: Histogram;
  expected: number;
  waiters: number;
  unknown: number;
  responses: number;
  changesPerResponse: number;
  requests: number;
  repeats: number;
  statuses: Record<string, number>;
  errors: number;
  lastError: string;
  cpuShare: number;
  durationMs: number;
  answersPerWaiter: { min: number; p50: number; max: number };
  longestGapMs: { min: number; p50: number; max: number };
}

const RAW_CHANNEL = 'bench_raw_latency';
const AUTH = { authorization: 'Bearer latency-bench' }; // one auth scope for every waiter
const ITEMS = (name: string) =>
  `CREATE TABLE ${name} (id bigserial PRIMARY KEY, run int NOT NULL DEFAULT 0, body text)`;
const WRITE: Record<Kind, string> = {
  // db_ms: the server's clock at the end of the statement, just before the commit (a check on
  // how late the writer stamps its acknowledgement).
  polling: `INSERT INTO items (run, body) VALUES (1, 'latency')
            RETURNING id, extract(epoch FROM clock_timestamp()) * 1000 AS db_ms`,
  // Insert and NOTIFY (the row as JSON) in one statement, so one transaction, one round trip.
  raw: `WITH ins AS (INSERT INTO raw_items (run, body) VALUES (1, 'latency') RETURNING id, run, body)
        SELECT id, pg_notify('${RAW_CHANNEL}', row_to_json(ins)::text),
               extract(epoch FROM clock_timestamp()) * 1000 AS db_ms
        FROM ins`,
};

/**
 * Commit-to-client latency: 1,000 held long polls on one feed of the polling app (its own process,
 * in-memory index, aggregator on, one auth scope) while a writer commits 100 changes/s, against a
 * raw LISTEN → node:http server with the same clients and rate.
 */
export async function latency(opts: LatencyOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const p = {
    seconds: opts.seconds ?? 10,
    rate: opts.rate ?? 100,
    waiters: opts.waiters ?? 1000,
    clientProcesses: opts.clientProcesses ?? 1,
    warmupMs: opts.warmupMs ?? 1000,
    transports: opts.transports ?? (['long-poll', 'sse'] as Transport[]),
  };
  const db = await createBenchDatabase(opts.serverUrl);
  const writer = new Client({ connectionString: db.url });
  const children: Child[] = [];
  try {
    await writer.connect();
    await writer.query(`${ITEMS('items')}; ${ITEMS('raw_items')}`);
    const version = (await writer.query('SHOW server_version')).rows[0].server_version;
    const env = { DATABASE_URL: db.url, RAW_CHANNEL };
    const [polling, raw, ...clients] = await Promise.all([
      Child.start('polling-app', join(__dirname, '..', 'lib', 'latency-polling-server.ts'), {
        env,
      }),
      Child.start('raw-server', join(__dirname, '..', 'lib', 'latency-raw-server.ts'), { env }),
      ...Array.from({ length: p.clientProcesses }, (_, i) =>
        Child.start(`clients-${i + 1}`, join(__dirname, '..', 'lib', 'latency-clients.ts')),
      ),
    ]);
    children.push(polling, raw, ...clients);
    const rtts = [];
    for (const child of children) rtts.push((await calibrate(child)).rttMs);
    log(
      `latency: clock offsets of the child processes ` +
        children.map((c) => `${c.name} ${c.offsetMs.toFixed(3)} ms`).join(', ') +
        ` (IPC round trip ≤ ${Math.max(...rtts).toFixed(3)} ms)`,
    );

    // Other load on the machine (another bench, a build) skews every figure here: say so.
    const idleBefore = machineCpu();
    await sleep(1000);
    const busyBefore = busyShare(idleBefore, machineCpu());
    log(`latency: machine ${(100 * busyBefore).toFixed(0)}% busy before the runs (all cores)`);

    const reports: RunReport[] = [];
    for (let run = 0; run < opts.runs; run++) {
      const order: Kind[] = run % 2 ? ['raw', 'polling'] : ['polling', 'raw'];
      for (const transport of p.transports)
        for (const kind of order) {
          const server = kind === 'polling' ? polling : raw;
          const r = await measure({ kind, transport, server, clients, writer, p });
          reports.push(r);
          log(
            `latency: run ${run + 1}, ${transport}, ${kind}: p50 ${r.total.p50} ms, p99 ${r.total.p99} ms, ` +
              `max ${r.total.max} ms; to server p50 ${r.toServer.p50} ms, server → client p50 ` +
              `${r.fromServer.p50} ms; ${r.delivered}/${r.expected} deliveries, ` +
              `${r.changesPerResponse.toFixed(2)} changes/response, server CPU ` +
              `${(100 * r.serverCpuShare).toFixed(0)}%, clients CPU ${(100 * r.clientCpu).toFixed(0)}%, ` +
              `machine ${(100 * r.machineBusy).toFixed(0)}% busy; answers per waiter (min/p50/max) ` +
              `${r.answersPerWaiter.min}/${r.answersPerWaiter.p50}/${r.answersPerWaiter.max}, longest ` +
              `silence ${r.longestGapMs.p50.toFixed(0)}/${r.longestGapMs.max.toFixed(0)} ms (p50/max)` +
              (r.handlerRuns !== undefined ? `, ${r.handlerRuns} handler runs` : '') +
              (r.errors ? `, ${r.errors} errors (${r.lastError})` : ''),
          );
        }
    }
    // Where the time goes when the server has headroom (polling app only; notes, not rows).
    const light: Array<{ label: string; waiters: number; rate: number; reports: RunReport[] }> = [];
    for (const point of opts.light === false ? [] : LIGHT) {
      const done: RunReport[] = [];
      for (let run = 0; run < opts.runs; run++) {
        done.push(
          await measure({
            kind: 'polling',
            transport: 'long-poll',
            server: polling,
            clients,
            writer,
            p: point,
          }),
        );
      }
      light.push({ ...point, reports: done });
      const r = done[done.length - 1];
      log(
        `latency: ${point.waiters} waiters, ${point.rate} changes/s (${point.label}), last run: ` +
          `p50 ${r.total.p50} ms, p99 ${r.total.p99} ms; to bus p50 ${r.toServer.p50} ms, bus → ` +
          `client p50 ${r.fromServer.p50} ms; ${r.delivered}/${r.expected} deliveries`,
      );
    }
    await Promise.all(children.map((c) => c.stop()));
    const of = (t: Transport) => reports.filter((r) => r.transport === t);
    return {
      rows: p.transports.flatMap((t) => rows(of(t), p, t === 'long-poll' ? light : [])),
      notes: [
        ...p.transports.flatMap((t) => notes(of(t), p, version, busyBefore)),
        ...light.map(lightNote),
      ],
    };
  } finally {
    await Promise.all(children.map((c) => c.stop().catch(() => undefined)));
    await writer.end().catch(() => undefined);
    await db.drop();
  }
}

async function measure(ctx: {
  kind: Kind;
  transport: Transport;
  server: Child;
  clients: Child[];
  writer: Client;
  p: { seconds: number; rate: number; waiters: number; warmupMs: number };
}): Promise<RunReport> {
  const { kind, transport, server, clients, writer, p } = ctx;
  const url = `${server.info.url}${PATHS[kind][transport]}`;
  await server.request('begin');
  await Promise.all(
    clients.map((c, i) =>
      c.request(
        'start',
        { url, transport, headers: AUTH, waiters: share(p.waiters, clients.length, i) },
        30_000,
      ),
    ),
  );
  await sleep(200); // the last waiters' polls reach the server and are held

  const cpuBefore = machineCpu();
  const w = await write(writer, WRITE[kind], p);
  const machineBusy = busyShare(cpuBefore, machineCpu());
  const lastId = w.commits[w.commits.length - 2];
  const finished = await Promise.all(
    clients.map((c) => c.request<{ caughtUp: number }>('finish', { lastId, timeoutMs: 10_000 })),
  );
  const srv = await server.request<{
    notices?: Float64Array;
    arrivals?: Float64Array;
    cpuShare: number;
    loopDelayMs: { p50: number; p99: number; max: number };
    handlerRuns?: number;
  }>('end');

  // When each change reached the server, on this process's clock.
  const reached =
    kind === 'polling'
      ? await busTimes(writer, srv.notices!, server.offsetMs)
      : pairsToMap(srv.arrivals!, server.offsetMs);
  const toServer = histogram();
  const triples: number[] = [];
  for (let i = 0; i < w.commits.length; i += 2) {
    const [id, committed] = [w.commits[i], w.commits[i + 1]];
    const at = reached.get(id);
    triples.push(id, committed, at ?? NaN);
    if (at !== undefined) record(toServer, at - committed);
  }
  const replies = await Promise.all(
    clients.map((c) =>
      c.request<ClientReport>('report', {
        // Each client process gets the times on its own clock.
        changes: Float64Array.from(triples, (v, i) => (i % 3 === 0 ? v : v + c.offsetMs)),
      }),
    ),
  );
  const total = histogram();
  const fromServer = histogram();
  const statuses: Record<string, number> = {};
  for (const r of replies) {
    merge(total, r.total);
    merge(fromServer, r.fromServer);
    for (const [status, n] of Object.entries(r.statuses))
      statuses[status] = (statuses[status] ?? 0) + n;
  }
  const responses = replies.reduce((n, r) => n + r.responses, 0);
  return {
    kind,
    transport,
    total: summary(total),
    fromServer: summary(fromServer),
    toServer: summary(toServer),
    delivered: total.count,
    expected: replies.reduce((n, r) => n + r.expected, 0),
    repeats: replies.reduce((n, r) => n + r.repeats, 0),
    caughtUp: finished.reduce((n, f) => n + f.caughtUp, 0),
    responses,
    changesPerResponse: responses
      ? replies.reduce((n, r) => n + r.changesPerResponse * r.responses, 0) / responses
      : 0,
    requests: replies.reduce((n, r) => n + r.requests, 0),
    requestRate: replies.reduce((n, r) => n + (r.requests / r.durationMs) * 1000, 0),
    statuses,
    errors: replies.reduce((n, r) => n + r.errors, 0),
    lastError: replies.map((r) => r.lastError).find(Boolean) ?? '',
    serverCpuShare: srv.cpuShare,
    clientCpu: replies.reduce((n, r) => n + r.cpuShare, 0),
    answersPerWaiter: replies[0].answersPerWaiter,
    longestGapMs: replies[0].longestGapMs,
    machineBusy,
    serverLoopDelayMs: srv.loopDelayMs,
    // The fixture counts the runs of its long-poll handler only.
    ...(kind === 'polling' ? { readerBatches: srv.notices!.length / 2 } : {}),
    ...(kind === 'polling' && transport === 'long-poll' ? { handlerRuns: srv.handlerRuns } : {}),
    writer: {
      changes: w.commits.length / 2,
      written: w.insertMs.length,
      late: w.late,
      insertMsP50: median(w.insertMs),
      insertMsMax: Math.max(...w.insertMs),
      ackLagMsP50: median(w.ackLagMs),
      ackLagMsMax: Math.max(...w.ackLagMs),
    },
  };
}

/**
 * The writer: one connection, one autocommit statement per change at a fixed rate (a schedule, so
 * a slow commit does not shift the ones after it). Returns [id, commit-ack time] pairs of the
 * measured window, taken the moment each statement's answer arrived.
 */
async function write(
  writer: Client,
  sql: string,
  p: { seconds: number; rate: number; warmupMs: number },
): Promise<{ commits: number[]; late: number; insertMs: number[]; ackLagMs: number[] }> {
  const interval = 1000 / p.rate;
  const total = Math.round((p.warmupMs + p.seconds * 1000) / interval);
  const commits: number[] = [];
  const insertMs: number[] = [];
  const ackLagMs: number[] = [];
  let late = 0;
  const start = performance.now() + 5;
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    else if (wait < -2) late++;
    const sent = performance.now();
    const { rows } = await writer.query(sql);
    const acked = clock();
    insertMs.push(performance.now() - sent);
    if (i * interval >= p.warmupMs) {
      commits.push(Number(rows[0].id), acked);
      ackLagMs.push(acked - Number(rows[0].db_ms));
    }
  }
  return { commits, late, insertMs, ackLagMs };
}

/**
 * Bus notice times per change id for the polling app: the notice of a reader batch carries the
 * index head after it, and position k is the k-th row of the change log in (xid, id) order (the
 * app's index generation started on an empty log, and only the writer writes).
 */
async function busTimes(
  client: Client,
  notices: Float64Array,
  offsetMs: number,
): Promise<Map<number, number>> {
  const { rows } = await client.query<{ rid: string }>(
    'SELECT resource_id AS rid FROM polling_changes ORDER BY xid, id',
  );
  const times = new Map<number, number>();
  let previous = notices.length ? notices[1] - 1 : 0;
  for (let i = 0; i < notices.length; i += 2) {
    const [at, position] = [notices[i] - offsetMs, notices[i + 1]];
    for (let pos = Math.max(previous, 0) + 1; pos <= position; pos++) {
      const row = rows[pos - 1];
      if (row) times.set(Number(row.rid), at);
    }
    previous = position;
  }
  return times;
}

function pairsToMap(pairs: Float64Array, offsetMs: number): Map<number, number> {
  const times = new Map<number, number>();
  for (let i = 0; i < pairs.length; i += 2) times.set(pairs[i + 1], pairs[i] - offsetMs);
  return times;
}

/** Jiffies of all cores from /proc/stat: [busy, total]; [0, 0] where there is no /proc. */
function machineCpu(): [number, number] {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = v[3] + (v[4] || 0);
    const total = v.reduce((a, b) => a + b, 0);
    return [total - idle, total];
  } catch {
    return [0, 0];
  }
}

function busyShare(before: [number, number], after: [number, number]): number {
  const total = after[1] - before[1];
  return total > 0 ? (after[0] - before[0]) / total : NaN;
}

function share(total: number, parts: number, i: number): number {
  return Math.floor(total / parts) + (i < total % parts ? 1 : 0);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function lightNote(point: {
  label: string;
  waiters: number;
  rate: number;
  reports: RunReport[];
}): string {
  const med = (pick: (r: RunReport) => number) => median(point.reports.map(pick)).toFixed(1);
  const idle = point.rate < 20;
  return (
    `Unsaturated, polling app, ${point.waiters} waiters, ${point.rate} changes/s ` +
    `(${point.label}, ${idle ? 'gate armed' : 'gate closed'}), ` +
    `median of ${point.reports.length} runs: p50 ${med((r) => r.total.p50)} ms, p99 ` +
    `${med((r) => r.total.p99)} ms; commit → bus p50 ${med((r) => r.toServer.p50)} ms ` +
    `(p99 ${med((r) => r.toServer.p99)}), bus → client p50 ${med((r) => r.fromServer.p50)} ms ` +
    `(p99 ${med((r) => r.fromServer.p99)}); server CPU ` +
    `${(100 * median(point.reports.map((r) => r.serverCpuShare))).toFixed(0)}% of a core; ` +
    `${med((r) => (r.handlerRuns ?? 0) / r.writer.written)} handler runs per change.`
  );
}

function rows(
  reports: RunReport[],
  p: { seconds: number; rate: number; waiters: number },
  light: Array<{ label: string; waiters: number; rate: number; reports: RunReport[] }>,
): BenchRow[] {
  const of = (kind: Kind) => reports.filter((r) => r.kind === kind);
  const sse = reports[0]?.transport === 'sse';
  const out: BenchRow[] = [];
  // Goals of the hot-path issue: within these ratios of the raw floor measured in the same run.
  for (const [q, goalRatio] of [
    ['p50', 1.3],
    ['p99', 1.5],
  ] as const) {
    const figure = figureOf(of('polling').map((r) => r.total[q]));
    const base = figureOf(of('raw').map((r) => r.total[q]));
    const ratio = figure.median / base.median;
    const waiters = p.waiters.toLocaleString('en');
    out.push({
      bench: 'latency',
      row: sse
        ? `SSE commit-to-client latency ${q}, ${waiters} subscribers, ${p.rate} changes/s`
        : `commit-to-client latency ${q}, ${waiters} held long polls, ${p.rate} changes/s`,
      unit: 'ms',
      figure,
      baseline: { label: `raw LISTEN → node:http${sse ? ' SSE' : ''}`, ...base },
      ratio,
      goal: `≤ ${goalRatio.toFixed(2)}×`,
      met: ratio <= goalRatio,
      details: {
        transport: reports[0]?.transport,
        quantile: q,
        seconds: p.seconds,
        rate: p.rate,
        waiters: p.waiters,
        runs: reports,
        ...(q === 'p50' ? { unsaturated: light } : {}),
      },
    });
  }
  return out;
}

function goalNote(reports: RunReport[], p: { waiters: number; rate: number }): string {
  const med = (kind: Kind, q: 'p50' | 'p99') =>
    median(reports.filter((r) => r.kind === kind).map((r) => r.total[q]));
  const verdict = (q: 'p50' | 'p99', goal: number) => {
    const [v, floor] = [med('polling', q), med('raw', q)];
    return (
      `${q} ${v.toFixed(1)} ms = ${(v / floor).toFixed(2)}× the raw floor of ${floor.toFixed(1)} ms ` +
      `(goal ≤ ${goal}×: ${v / floor <= goal ? 'met' : 'NOT met'})`
    );
  };
  return (
    `Goal (issue), ${reports[0]?.transport}: ${verdict('p50', 1.3)}; ${verdict('p99', 1.5)}; ` +
    `${p.waiters} waiters × ${p.rate} changes/s = ${((p.waiters * p.rate) / 1000).toFixed(0)}k deliveries/s asked.`
  );
}

function notes(
  reports: RunReport[],
  p: { seconds: number; rate: number; waiters: number; clientProcesses: number; warmupMs: number },
  version: string,
  busyBefore: number,
): string[] {
  const of = (kind: Kind) => reports.filter((r) => r.kind === kind);
  const med = (kind: Kind, pick: (r: RunReport) => number) => median(of(kind).map(pick));
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const describe = (kind: Kind, toServer: string) =>
    `${kind === 'polling' ? 'polling app' : 'raw floor'}: commit → ${toServer} p50 ` +
    `${ms(med(kind, (r) => r.toServer.p50))} (p99 ${ms(med(kind, (r) => r.toServer.p99))}); ` +
    `server → client p50 ${ms(med(kind, (r) => r.fromServer.p50))} (p99 ` +
    `${ms(med(kind, (r) => r.fromServer.p99))}); ${med(kind, (r) => r.changesPerResponse).toFixed(2)} ` +
    `changes per response, ${med(kind, (r) => r.requestRate / 1000).toFixed(1)}k poll requests/s; ` +
    `server process CPU ${(100 * med(kind, (r) => r.serverCpuShare)).toFixed(0)}% of one core, ` +
    `event-loop delay p99 ${ms(med(kind, (r) => r.serverLoopDelayMs.p99))}; clients CPU ` +
    `${(100 * med(kind, (r) => r.clientCpu)).toFixed(0)}%; each waiter got ` +
    `${med(kind, (r) => r.answersPerWaiter.p50)} answers (median), longest silence of a waiter ` +
    `${ms(med(kind, (r) => r.longestGapMs.max))}`;
  const deliveries = reports.every((r) => r.delivered === r.expected && r.repeats === 0)
    ? 'every waiter received every change exactly once, in commit order, in every run'
    : `deliveries off in some runs: ${reports
        .filter((r) => r.delivered !== r.expected || r.repeats > 0)
        .map((r) => `${r.kind} ${r.delivered}/${r.expected} (${r.repeats} repeated)`)
        .join(', ')}`;
  const polling = of('polling');
  if (reports[0]?.transport === 'sse') {
    return [
      `SSE latency, ${p.waiters} subscribers: ${deliveries}, median of ${polling.length} runs.`,
      `${describe('polling', 'bus')}.`,
      `${describe('raw', 'LISTEN notification')}.`,
      goalNote(reports, p),
    ];
  }
  return [
    `Latency: PostgreSQL ${version}, ${cpus().length} cores; ${p.waiters} waiters in ` +
      `${p.clientProcesses} client process(es), ${p.rate} INSERTs/s for ${p.seconds} s after ` +
      `${p.warmupMs / 1000} s of warm-up; median of ${polling.length} runs; ${deliveries}. Machine ` +
      `${(100 * busyBefore).toFixed(0)}% busy just before the runs, ` +
      `${(100 * median(reports.map((r) => r.machineBusy))).toFixed(0)}% (median) during them.`,
    `${describe('polling', 'bus')}; handler runs per change ` +
      `${med('polling', (r) => (r.handlerRuns ?? 0) / r.writer.written).toFixed(2)}, reader ` +
      `batches per change ${med('polling', (r) => (r.readerBatches ?? 0) / r.writer.written).toFixed(2)}.`,
    `${describe('raw', 'LISTEN notification')}.`,
    `Writer: INSERT round trip p50 ${ms(median(reports.map((r) => r.writer.insertMsP50)))}; ` +
      `acknowledgement stamped ${ms(median(reports.map((r) => r.writer.ackLagMsP50)))} (median) ` +
      `after the statement's end; ${reports.reduce((n, r) => n + r.writer.late, 0)} writes started > 2 ms late.`,
    goalNote(reports, p),
  ];
}

export const scenario: Scenario = {
  name: 'latency',
  run: (settings) =>
    latency({
      ...settings,
      seconds: Number(process.env.BENCH_LATENCY_SECONDS || 10),
      waiters: Number(process.env.BENCH_LATENCY_WAITERS || 1000),
      rate: Number(process.env.BENCH_LATENCY_RATE || 100),
      clientProcesses: Number(process.env.BENCH_LATENCY_CLIENT_PROCS || 1),
      // BENCH_LATENCY_TRANSPORTS=sse: the SSE rows alone.
      transports: process.env.BENCH_LATENCY_TRANSPORTS?.split(',') as Transport[] | undefined,
    }),
};
