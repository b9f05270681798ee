import { join } from 'node:path';
import { Client } from 'pg';
import { createBenchDatabase } from '../lib/bench-database';
import { Child } from '../lib/child';
import { type BenchResult, type Scenario, type BenchRow, figureOf, median } from '../lib/report';

export interface SseMemoryOptions {
  /** Server to bench on; a fresh database is created there and dropped afterwards. */
  serverUrl: string;
  runs: number;
  /** SSE subscribers on the one feed (default 1,000). */
  subscribers?: number;
  /** Of them, subscribers that never read (default 10). */
  stalled?: number;
  /** Changes written while they follow (default 10,000), in transactions of ROWS_PER_COMMIT. */
  changes?: number;
  log?: (line: string) => void;
}

const ROWS_PER_COMMIT = 10;
const COMMITS_PER_SECOND = 20;
/** Bytes of each row's body (one client process parses what 1,000 subscribers receive). */
const BODY_BYTES = 20;
const AUTH = { authorization: 'Bearer sse-memory-bench' };
const SAMPLE_MS = 100;

/** process.memoryUsage() of the app, in MB. */
interface MemorySplit {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

interface RunReport {
  stalled: number;
  /** The app's memory split at its RSS peak, and after the flow once a full GC ran. */
  memory: { peak: MemorySplit; afterGc: MemorySplit };
  /** App RSS with the subscribers connected before the first change, peak, and after the flow. */
  rssMb: { before: number; peak: number; after: number };
  caughtUp: number;
  /** Stalled streams the server dropped (its `dropped` events). */
  stalledDropped: number;
  /** Handler runs while the changes flowed, per commit. */
  runsPerCommit: number;
  seconds: number;
}

/**
 * Memory of an SSE feed with subscribers that never read: 1,000 subscribers of the fixture's
 * @LiveStream route (its own process, in-memory index), 10 of them raw sockets that never read,
 * while 10,000 changes of ~1 KB flow; against the same run with every subscriber reading.
 */
export async function sseMemory(opts: SseMemoryOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const p = {
    subscribers: opts.subscribers ?? 1000,
    stalled: opts.stalled ?? 10,
    changes: opts.changes ?? 10_000,
  };
  const db = await createBenchDatabase(opts.serverUrl);
  const writer = new Client({ connectionString: db.url });
  const children: Child[] = [];
  try {
    await writer.connect();
    await writer.query(
      'CREATE TABLE items (id bigserial PRIMARY KEY, run int NOT NULL DEFAULT 0, body text)',
    );
    const env = { DATABASE_URL: db.url };
    const [app, clients] = await Promise.all([
      Child.start('polling-app', join(__dirname, '..', 'lib', 'latency-polling-server.ts'), {
        env,
      }),
      Child.start('clients', join(__dirname, '..', 'lib', 'latency-clients.ts')),
    ]);
    children.push(app, clients);
    const reports: RunReport[] = [];
    for (let run = 0; run < opts.runs; run++) {
      const order = run % 2 ? [p.stalled, 0] : [0, p.stalled];
      for (const stalled of order) {
        const r = await measure({ app, clients, writer, p, stalled, run: run * 2 + 1 });
        reports.push(r);
        log(
          `sse-memory: run ${run + 1}, ${stalled} stalled: RSS ${r.rssMb.before.toFixed(0)} → peak ` +
            `${r.rssMb.peak.toFixed(0)} → ${r.rssMb.after.toFixed(0)} MB; ${r.caughtUp} readers ` +
            `caught up, ${r.stalledDropped}/${stalled} stalled dropped by the server; ` +
            `${r.runsPerCommit.toFixed(2)} handler runs per commit; ` +
            `${r.seconds.toFixed(1)} s; at peak ${splitText(r.memory.peak)}; after a full GC ` +
            splitText(r.memory.afterGc),
        );
      }
    }
    await Promise.all(children.map((c) => c.stop()));
    return { rows: rows(reports, p), notes: notes(reports, p) };
  } finally {
    await Promise.all(children.map((c) => c.stop().catch(() => undefined)));
    await writer.end().catch(() => undefined);
    await db.drop();
  }
}

async function measure(ctx: {
  app: Child;
  clients: Child;
  writer: Client;
  p: { subscribers: number; changes: number };
  stalled: number;
  run: number;
}): Promise<RunReport> {
  const { app, clients, writer, p, stalled } = ctx;
  // A partition of its own per measurement: earlier changes are not replayed to anyone.
  const url = `${app.info.url}/runs/${ctx.run}/stream`;
  // The stalled ones follow the same feed with 64 KB more per event (bench/README.md).
  const stalledUrl = `${app.info.url}/runs/${ctx.run}/padded-stream`;
  await clients.request(
    'start',
    { url, stalledUrl, transport: 'sse', headers: AUTH, waiters: p.subscribers - stalled, stalled },
    60_000,
  );
  await sleep(500);
  const rssMb = () => app.usage().rssBytes / (1024 * 1024);
  const before = rssMb();
  let peak = before;
  let peakSplit = await memorySplit(app, 'memory');
  const sampler = setInterval(() => {
    const now = rssMb();
    if (now <= peak) return;
    peak = now;
    void memorySplit(app, 'memory').then((split) => {
      if (split.rss >= peakSplit.rss) peakSplit = split;
    });
  }, SAMPLE_MS);
  const started = performance.now();
  let finished: { caughtUp: number };
  const probeBefore = await app.request<{ dropped: number; handlerRuns: number }>('probe');
  let commits = 0;
  try {
    let lastId = 0;
    commits = p.changes / ROWS_PER_COMMIT;
    for (let i = 0; i < commits; i++) {
      const due = started + (i * 1000) / COMMITS_PER_SECOND;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const { rows } = await writer.query<{ id: string }>(
        `INSERT INTO items (run, body) SELECT $1, repeat('x', ${BODY_BYTES})
         FROM generate_series(1, ${ROWS_PER_COMMIT}) RETURNING id`,
        [ctx.run],
      );
      lastId = Math.max(lastId, ...rows.map((r) => Number(r.id)));
    }
    finished = await clients.request('finish', { lastId, timeoutMs: 30_000 }, 180_000);
  } finally {
    clearInterval(sampler);
  }
  const seconds = (performance.now() - started) / 1000;
  peak = Math.max(peak, rssMb());
  const afterGc = await memorySplit(app, 'gc');
  const probeAfter = await app.request<{ dropped: number; handlerRuns: number }>('probe');
  await clients.request('report', { changes: new Float64Array() });
  await sleep(1000); // the server sees the streams close
  return {
    stalled,
    memory: { peak: peakSplit, afterGc },
    rssMb: { before, peak, after: rssMb() },
    caughtUp: finished.caughtUp,
    stalledDropped: probeAfter.dropped - probeBefore.dropped,
    runsPerCommit: (probeAfter.handlerRuns - probeBefore.handlerRuns) / commits,
    seconds,
  };
}

async function memorySplit(app: Child, probe: 'memory' | 'gc'): Promise<MemorySplit> {
  const usage = await app.request<Record<keyof MemorySplit, number>>(probe, {});
  const mb = (key: keyof MemorySplit) => usage[key] / 1024 / 1024;
  return {
    rss: mb('rss'),
    heapUsed: mb('heapUsed'),
    heapTotal: mb('heapTotal'),
    external: mb('external'),
    arrayBuffers: mb('arrayBuffers'),
  };
}

const splitText = (m: MemorySplit) =>
  `rss ${m.rss.toFixed(0)}, heap ${m.heapUsed.toFixed(0)}/${m.heapTotal.toFixed(0)}, ` +
  `external ${m.external.toFixed(0)}, arrayBuffers ${m.arrayBuffers.toFixed(0)} MB`;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function rows(reports: RunReport[], p: { subscribers: number; stalled: number }): BenchRow[] {
  const growth = (r: RunReport) => r.rssMb.peak - r.rssMb.before;
  const withStalled = reports.filter((r) => r.stalled > 0);
  const allReading = reports.filter((r) => r.stalled === 0);
  const figure = figureOf(withStalled.map(growth));
  const base = figureOf(allReading.map(growth));
  const closed = figureOf(withStalled.map((r) => r.stalledDropped));
  const perSubscriber = (r: RunReport) => (growth(r) * 1024) / p.subscribers;
  const perFigure = figureOf(withStalled.map(perSubscriber));
  const perBase = figureOf(allReading.map(perSubscriber));
  return [
    {
      bench: 'sse-memory',
      row:
        `SSE memory: app RSS growth while 10,000 changes flow, ${p.subscribers.toLocaleString('en')} ` +
        `subscribers of which ${p.stalled} never read`,
      unit: 'MB',
      figure,
      baseline: { label: 'every subscriber reading', ...base },
      ratio: figure.median / Math.max(base.median, 1),
      goal: 'bounded, slow ones dropped',
      met: figure.median <= base.median + 50 && closed.median === p.stalled,
      details: { runs: reports },
    },
    {
      bench: 'sse-memory',
      row: `SSE memory: app RSS growth per subscriber while 10,000 changes flow (${p.stalled} never read)`,
      unit: 'KB',
      figure: perFigure,
      baseline: { label: 'every subscriber reading', ...perBase },
      ratio: perFigure.median / Math.max(perBase.median, 0.001),
    },
    {
      bench: 'sse-memory',
      row: `SSE memory: subscribers that never read, dropped by the server (of ${p.stalled})`,
      unit: 'streams',
      figure: closed,
      goal: `= ${p.stalled}`,
      met: closed.median === p.stalled,
    },
  ];
}

function notes(reports: RunReport[], p: { subscribers: number; stalled: number }): string[] {
  const caughtUp = reports.every((r) => r.caughtUp === p.subscribers - r.stalled);
  return [
    `SSE memory: ${p.subscribers} subscribers, ${p.stalled} stalled; median of ` +
      `${reports.length / 2} runs; every reading subscriber got the last change in every run: ` +
      `${caughtUp ? 'yes' : 'NO'}; a run took ${median(reports.map((r) => r.seconds)).toFixed(1)} s (median).`,
  ];
}

export const scenario: Scenario = { name: 'sse-memory', run: sseMemory };
