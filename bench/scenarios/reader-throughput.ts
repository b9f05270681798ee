import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import Redis from 'ioredis';
import { Client } from 'pg';
import { ChangeReader, PollingModule } from '../../src';
import { ChangeBus } from '../../src/change-bus/change-bus.service';
import { ChangeLogQueries } from '../../src/change-capture/change-log.queries';
import { CHANGE_LOG_START } from '../../src/change-capture/change-log-cursor';
import { installChangeLogSql } from '../../src/change-capture/schema/change-log.sql';
import { createBenchDatabase } from '../lib/bench-database';
import {
  type BenchResult,
  type Scenario,
  type BenchRow,
  type Figure,
  figureOf,
  median,
} from '../lib/report';

export interface ReaderThroughputOptions {
  /** Server to bench on; a fresh database is created there and dropped afterwards. */
  serverUrl: string;
  /** Redis for the shared index; keys go under a unique prefix and are deleted afterwards. */
  redisUrl: string;
  runs: number;
  /** Change rows per run (default 200,000). */
  changes?: number;
  /** Rows per INSERT ... SELECT generate_series statement (one transaction each; default 10,000). */
  insertBatch?: number;
  /** The reader's batch size (reader.batchSize; default 5,000, the module's default). */
  batchSize?: number;
  /** Feeds the rows are spread over (partition values; default 100). */
  feeds?: number;
  log?: (line: string) => void;
}

type IndexKind = 'memory' | 'redis';

/** One reader run: head positions over time as the bus announced them. */
interface ReaderRun {
  /** Changes per second from the first commit (streaming) or the backlog's release (backlog). */
  rate: number;
  /** ms from the first commit (or the release) until the head reached the count. */
  elapsedMs: number;
  /** Slope between 10 % and 90 % of the count: the steady rate, without start and end effects. */
  steadyRate: number;
  /** Index writes (reader batches) it took. */
  appends: number;
  /** Streaming only: how fast the writer committed, and how far behind the reader was then. */
  writerRate?: number;
  behindAtLastCommit?: number;
  drainMs?: number;
}

/** Changes committed in INSERT ... SELECT statements of `insertBatch` rows over `feeds` feeds. */
interface BulkLoad {
  count: number;
  insertBatch: number;
  feeds: number;
}

const TABLE = 'bulk_items';
const READ_TIMEOUT_MS = 60_000;

/**
 * Reader throughput: how many changes per second the ChangeReader moves from the change log into
 * the index (in-memory and Redis), streaming (the reader runs while bulk INSERTs commit) and
 * catching up a backlog (committed changes held back behind an open transaction, released at
 * once when it ends), against a bare pg client reading the same
 * rows in (xid, id) order with the reader's batch size.
 */
export async function readerThroughput(opts: ReaderThroughputOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const count = opts.changes ?? 200_000;
  const insertBatch = opts.insertBatch ?? 10_000;
  const batchSize = opts.batchSize ?? 5000;
  const feeds = opts.feeds ?? 100;
  const db = await createBenchDatabase(opts.serverUrl);
  const client = new Client({ connectionString: db.url });
  const redis = new Redis(opts.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const prefixBase = `polling-bench:${process.pid}:${randomBytes(4).toString('hex')}:`;
  try {
    await client.connect();
    await redis.connect();
    await client.query('SET client_min_messages = warning');
    await client.query(installChangeLogSql('public'));
    await client.query(
      `CREATE TABLE ${TABLE} (id bigserial PRIMARY KEY, channel text NOT NULL, body text NOT NULL)`,
    );
    await client.query(`SELECT polling_track('${TABLE}', 'id', 'channel')`);
    const version = (await client.query('SHOW server_version')).rows[0].server_version;

    const kinds: IndexKind[] = ['memory', 'redis'];
    const streaming = new Map<IndexKind, ReaderRun[]>(kinds.map((k) => [k, []]));
    const backlog = new Map<IndexKind, ReaderRun[]>(kinds.map((k) => [k, []]));
    const floor: number[] = [];
    const readerSql: number[] = [];
    let runNo = 0;
    for (let run = 0; run < opts.runs; run++) {
      // Rotate which index goes first so drift on the machine hits both alike.
      const order = run % 2 ? [...kinds].reverse() : kinds;
      for (const kind of order) {
        const prefix = `${prefixBase}${runNo++}:`;
        await reset(client);
        const ctx = { url: db.url, redisUrl: opts.redisUrl, kind, prefix, batchSize };
        try {
          const s = await streamRun(ctx, client, { count, insertBatch, feeds });
          streaming.get(kind)!.push(s);
          log(
            `reader-throughput: run ${run + 1}, ${kind}, streaming: ${s.rate.toFixed(0)} changes/s ` +
              `(steady ${s.steadyRate.toFixed(0)}/s, writer ${s.writerRate!.toFixed(0)}/s, ` +
              `${s.behindAtLastCommit} behind at the last commit, drained in ${s.drainMs} ms, ` +
              `${s.appends} index writes)`,
          );
        } finally {
          if (kind === 'redis') await deleteKeys(redis, prefix);
        }
        // The same rows again, read by a bare client: the floor for reading them.
        const f = await plainSelect(client, count, batchSize);
        floor.push(f);
        // The reader's own read() (horizon, commit-age column, row decoding) from a bare client.
        const q = await readerQueryOnly(client, count, batchSize);
        readerSql.push(q);
        log(
          `reader-throughput: run ${run + 1}, plain SELECT floor: ${f.toFixed(0)} rows/s; ` +
            `the reader's read() alone: ${q.toFixed(0)} rows/s`,
        );
        // A backlog released at once (a long transaction ends): the reader's rate when rows wait.
        const backlogPrefix = `${prefixBase}${runNo++}:`;
        await reset(client);
        try {
          const r = await backlogRun({ ...ctx, prefix: backlogPrefix }, client, {
            count,
            insertBatch,
            feeds,
          });
          backlog.get(kind)!.push(r);
          log(
            `reader-throughput: run ${run + 1}, ${kind}, backlog: ${r.rate.toFixed(0)} changes/s ` +
              `(steady ${r.steadyRate.toFixed(0)}/s, ${r.appends} index writes)`,
          );
        } finally {
          if (kind === 'redis') await deleteKeys(redis, backlogPrefix);
        }
      }
    }

    const base = { label: `plain SELECT, batches of ${batchSize}`, ...figureOf(floor) };
    const rows: BenchRow[] = [];
    for (const kind of kinds) {
      const label = kind === 'memory' ? 'in-memory index' : 'Redis index';
      for (const [mode, runs] of [
        ['streaming', streaming.get(kind)!],
        ['backlog', backlog.get(kind)!],
      ] as const) {
        const figure = figureOf(runs.map((r) => r.rate));
        rows.push({
          bench: 'reader-throughput',
          row:
            mode === 'streaming'
              ? `reader throughput, ${label}: ${count / 1000}k changes streamed, commit → index`
              : `reader catch-up, ${label}: backlog of ${count / 1000}k changes released at once`,
          unit: 'changes/s',
          figure,
          baseline: base,
          ratio: figure.median / base.median,
          ...(mode === 'streaming' ? { goal: '≥ 20,000/s', met: figure.median >= 20_000 } : {}),
          details: { index: kind, mode, count, insertBatch, batchSize, feeds, runs },
        });
      }
    }
    const sqlOnly = figureOf(readerSql);
    rows.forEach((r) => (r.details!.readerReadOnly = sqlOnly));
    return {
      rows,
      notes: notes(rows, { count, insertBatch, batchSize, feeds, version, sqlOnly }),
    };
  } finally {
    await client.end().catch(() => undefined);
    redis.disconnect();
    await db.drop();
  }
}

interface RunContext {
  url: string;
  redisUrl: string;
  kind: IndexKind;
  prefix: string;
  batchSize: number;
}

async function reset(client: Client): Promise<void> {
  await client.query(`TRUNCATE ${TABLE}, polling_changes, polling_reader_state RESTART IDENTITY`);
  await client.query('CHECKPOINT');
}

/** The real module (reader + index, no HTTP), like an app instance; returns once the reader is live. */
async function startReader(ctx: RunContext): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(
    PollingModule.forRoot({
      postgres: { url: ctx.url },
      tables: [{ table: TABLE, partition: 'channel' }],
      installSchema: false,
      reader: { batchSize: ctx.batchSize },
      ...(ctx.kind === 'redis' ? { redis: { url: ctx.redisUrl }, keyPrefix: ctx.prefix } : {}),
    }),
    { logger: ['error'] },
  );
  return app;
}

/** Head positions as the reader announces each index write on the bus (exact, no sampling). */
function trackHead(app: INestApplicationContext): {
  points: Array<[number, number]>;
  reached(position: number): Promise<number>;
  stop(): void;
} {
  const points: Array<[number, number]> = [];
  let want = Infinity;
  let resolveReached: ((at: number) => void) | null = null;
  const sub = app.get(ChangeBus).notices$.subscribe((n) => {
    if (n.kind !== 'changes') return;
    const at = performance.now();
    points.push([at, n.position]);
    if (n.position >= want && resolveReached) resolveReached(at);
  });
  return {
    points,
    reached(position: number) {
      const last = points[points.length - 1];
      if (last && last[1] >= position) return Promise.resolve(last[0]);
      want = position;
      return new Promise<number>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`reader-throughput: head stuck below ${position}`)),
          READ_TIMEOUT_MS,
        );
        resolveReached = (at) => {
          clearTimeout(timer);
          resolve(at);
        };
      });
    },
    stop: () => sub.unsubscribe(),
  };
}

/** Rate between the first time the head passed 10 % and 90 % of the count. */
function steadyRate(points: Array<[number, number]>, count: number): number {
  const from = points.find(([, p]) => p >= count * 0.1);
  const to = points.find(([, p]) => p >= count * 0.9);
  if (!from || !to || to[0] === from[0]) return NaN;
  return ((to[1] - from[1]) / (to[0] - from[0])) * 1000;
}

async function streamRun(ctx: RunContext, client: Client, load: BulkLoad): Promise<ReaderRun> {
  const app = await startReader(ctx);
  try {
    await app.get(ChangeReader).whenLive();
    const head = trackHead(app);
    try {
      let firstCommit = 0;
      await insertRows(client, load, (from) => {
        if (from === 1) firstCommit = performance.now();
      });
      const lastCommit = performance.now();
      const atLastCommit = head.points[head.points.length - 1]?.[1] ?? 0;
      const done = await head.reached(load.count);
      const elapsedMs = done - firstCommit;
      return {
        rate: ((load.count - Math.min(load.insertBatch, load.count)) / elapsedMs) * 1000,
        elapsedMs,
        steadyRate: steadyRate(head.points, load.count),
        appends: head.points.length,
        writerRate:
          ((load.count - Math.min(load.insertBatch, load.count)) / (lastCommit - firstCommit)) *
          1000,
        behindAtLastCommit: load.count - atLastCommit,
        drainMs: Math.round(done - lastCommit),
      };
    } finally {
      head.stop();
    }
  } finally {
    await app.close();
  }
}

/** Commits `count` changes in INSERT ... SELECT statements of `insertBatch` rows. */
async function insertRows(
  client: Client,
  load: BulkLoad,
  afterEach: (from: number) => void = () => undefined,
): Promise<void> {
  for (let from = 1; from <= load.count; from += load.insertBatch) {
    const to = Math.min(load.count, from + load.insertBatch - 1);
    await client.query(
      `INSERT INTO ${TABLE} (channel, body)
       SELECT 'c' || (g % $3::int), 'x' FROM generate_series($1::int, $2::int) g`,
      [from, to, load.feeds],
    );
    afterEach(from);
  }
}

/**
 * A live reader, an open transaction holding the commit horizon while `count` changes commit
 * behind it, then the transaction ends: from that moment until the head reaches the count.
 */
async function backlogRun(ctx: RunContext, client: Client, load: BulkLoad): Promise<ReaderRun> {
  const app = await startReader(ctx);
  const blocker = new Client({ connectionString: ctx.url });
  try {
    await app.get(ChangeReader).whenLive();
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('SELECT pg_current_xact_id()'); // an xid: the horizon stops here
    await insertRows(client, load);
    const head = trackHead(app);
    try {
      const released = performance.now();
      await blocker.query('COMMIT');
      const done = await head.reached(load.count);
      const elapsedMs = done - released;
      return {
        rate: (load.count / elapsedMs) * 1000,
        elapsedMs,
        steadyRate: steadyRate(head.points, load.count),
        appends: head.points.length,
      };
    } finally {
      head.stop();
    }
  } finally {
    await blocker.end().catch(() => undefined);
    await app.close();
  }
}

/**
 * The floor: a bare pg client reads the same change rows (the columns the reader takes, as text)
 * in (xid, id) keyset order, `batchSize` at a time; no commit horizon, no index, no bus.
 */
async function plainSelect(client: Client, count: number, batchSize: number): Promise<number> {
  // ORDER BY the table's columns, not the text aliases (those would sort as text).
  const sql = `SELECT c.xid::text AS xid, c.id::text AS id, c.feed, c.resource_id
    FROM polling_changes c
    WHERE (c.xid, c.id) > ($1::text::xid8, $2::bigint) ORDER BY c.xid, c.id LIMIT $3`;
  let cursor = { xid: '0', id: '0' };
  let read = 0;
  const started = performance.now();
  for (;;) {
    const { rows } = await client.query(sql, [cursor.xid, cursor.id, batchSize]);
    read += rows.length;
    if (rows.length < batchSize) break;
    const last = rows[rows.length - 1];
    cursor = { xid: last.xid, id: last.id };
  }
  const elapsed = performance.now() - started;
  if (read !== count) throw new Error(`reader-throughput: plain SELECT read ${read} of ${count}`);
  return (read / elapsed) * 1000;
}

/** The reader's read() (its SQL and row decoding) in a loop from a bare client: no index, no bus. */
async function readerQueryOnly(client: Client, count: number, batchSize: number): Promise<number> {
  const queries = new ChangeLogQueries('public');
  let cursor = CHANGE_LOG_START;
  let read = 0;
  const started = performance.now();
  for (;;) {
    const { rows } = await queries.read(client, cursor, batchSize);
    read += rows.length;
    if (rows.length < batchSize) break;
    const last = rows[rows.length - 1];
    cursor = { xid: last.xid, id: last.id };
  }
  const elapsed = performance.now() - started;
  if (read !== count) throw new Error(`reader-throughput: read() took ${read} of ${count}`);
  return (read / elapsed) * 1000;
}

/** Removes this bench's keys only (SCAN + UNLINK under its own prefix; never FLUSHALL). */
async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

function notes(
  rows: BenchRow[],
  p: {
    count: number;
    insertBatch: number;
    batchSize: number;
    feeds: number;
    version: string;
    sqlOnly: Figure;
  },
): string[] {
  const runsOf = (kind: IndexKind, mode: string) =>
    (rows.find((r) => r.details?.index === kind && r.details?.mode === mode)?.details?.runs ??
      []) as ReaderRun[];
  const streamNote = (kind: IndexKind) => {
    const runs = runsOf(kind, 'streaming');
    const label = kind === 'memory' ? 'in-memory' : 'Redis';
    return (
      `${label}, streaming: writer committed a median ${median(runs.map((r) => r.writerRate!)).toFixed(0)} changes/s; ` +
      `reader ${median(runs.map((r) => r.behindAtLastCommit!))} changes behind at the last commit, ` +
      `drained a median ${median(runs.map((r) => r.drainMs!))} ms later; steady slope (10→90 %) ` +
      `${median(runs.map((r) => r.steadyRate)).toFixed(0)}/s; ` +
      `${median(runs.map((r) => r.appends))} index writes (≈ ${(p.count / median(runs.map((r) => r.appends))).toFixed(0)} changes each)` +
      (median(runs.map((r) => r.drainMs!)) < 100
        ? '; bound by the writer (the reader kept up).'
        : "; the reader fell behind: the reader's own rate.")
    );
  };
  return [
    `Reader throughput: PostgreSQL ${p.version}, ${cpus().length} CPU cores; ${p.count} change rows ` +
      `over ${p.feeds} feeds in INSERTs of ${p.insertBatch} rows, reader.batchSize ${p.batchSize}.`,
    streamNote('memory'),
    streamNote('redis'),
    `The reader's own read() alone from a bare client: a median ${p.sqlOnly.median.toFixed(0)} ` +
      `rows/s (${p.sqlOnly.min.toFixed(0)}–${p.sqlOnly.max.toFixed(0)}).`,
  ];
}

export const scenario: Scenario = { name: 'reader-throughput', run: readerThroughput };
