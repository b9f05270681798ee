import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Client } from 'pg';
import { ChangeReader, PollingModule } from '../../src';
import { ChangeLogQueries } from '../../src/change-capture/change-log.queries';
import { CHANGE_INDEX, type ChangeIndex } from '../../src/change-index/change-index.interface';
import { procUsage } from './child';

export interface LiveReaderOptions {
  url: string;
  table: string;
  partition?: string;
  /** Change-log schema (default public). */
  schema?: string;
}

export interface LiveReaderReport {
  /** Change-log rows at the moment the load ended. */
  changesAtEnd: number;
  /** Changes the reader had indexed (index head position) at that moment. */
  indexedAtEnd: number;
  /** Time until the index held every change-log row after the load ended; null if it never did. */
  drainMs: number | null;
  /** CPU the reader used during the load: this process (the reader's Node side) and its backends. */
  readerCpuMs: { node: number; postgres: number };
  /** The reader's reads during the load; those that found nothing, and of those, held back. */
  reads: number;
  emptyReads: number;
  heldBackReads: number;
}

const DRAIN_TIMEOUT_MS = 10_000;

/**
 * Runs `load` with the real module's ChangeReader leading the change log (in-memory index, no
 * Redis), so the wake gate is armed and closed by the reader as in production. The change log is
 * expected to be empty when called: the index head then counts exactly the rows the reader took.
 */
export async function withLiveReader<T>(
  opts: LiveReaderOptions,
  load: () => Promise<T>,
): Promise<{ result: T; report: LiveReaderReport }> {
  const schema = opts.schema ?? 'public';
  fixedReadPause();
  const app: INestApplicationContext = await NestFactory.createApplicationContext(
    PollingModule.forRoot({
      postgres: { url: opts.url },
      schema,
      tables: [{ table: opts.table, partition: opts.partition }],
      installSchema: false,
    }),
    { logger: ['error'] },
  );
  const probe = new Client({ connectionString: opts.url });
  try {
    await probe.connect();
    await app.get(ChangeReader).whenLive();
    const index = app.get<ChangeIndex>(CHANGE_INDEX);
    const position = async () => (await index.head())?.position ?? 0;
    const count = async () =>
      Number(
        (await probe.query(`SELECT count(*)::int AS n FROM "${schema}".polling_changes`)).rows[0].n,
      );

    const reads = countReads();
    const backendsBefore = await moduleBackendCpu(probe);
    const nodeBefore = process.cpuUsage();
    const result = await load();
    const nodeCpu = process.cpuUsage(nodeBefore);
    const readCounts = reads.stop();
    const backendsAfter = await moduleBackendCpu(probe);
    let postgresCpuMs = 0;
    for (const [pid, ms] of backendsAfter) postgresCpuMs += ms - (backendsBefore.get(pid) ?? 0);

    const indexedAtEnd = await position();
    const changesAtEnd = await count();
    const started = Date.now();
    let drainMs: number | null = null;
    while (Date.now() - started < DRAIN_TIMEOUT_MS) {
      if ((await position()) >= changesAtEnd) {
        drainMs = Date.now() - started;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return {
      result,
      report: {
        changesAtEnd,
        indexedAtEnd,
        ...readCounts,
        drainMs,
        readerCpuMs: { node: (nodeCpu.user + nodeCpu.system) / 1000, postgres: postgresCpuMs },
      },
    };
  } finally {
    await probe.end().catch(() => undefined);
    await app.close();
  }
}

/**
 * Counts the reader's reads (ChangeLogQueries.read, wrapped for the load): a read that finds
 * nothing costs as much as one that finds a few changes.
 */
function countReads(): { stop(): { reads: number; emptyReads: number; heldBackReads: number } } {
  const counts = { reads: 0, emptyReads: 0, heldBackReads: 0 };
  const original = Object.getOwnPropertyDescriptor(ChangeLogQueries.prototype, 'read')!;
  const read = original.value as ChangeLogQueries['read'];
  ChangeLogQueries.prototype.read = async function (this: ChangeLogQueries, ...args) {
    const result = await read.apply(this, args);
    counts.reads += 1;
    if (result.rows.length === 0) counts.emptyReads += 1;
    if (result.rows.length === 0 && result.heldBack) counts.heldBackReads += 1;
    return result;
  };
  return {
    stop() {
      Object.defineProperty(ChangeLogQueries.prototype, 'read', original);
      return counts;
    },
  };
}

/**
 * BENCH_READ_PAUSE_MS=n (profiling only): the reader pauses n ms after every read that found
 * changes instead of its adaptive pause (read-cadence.ts), to compare cadences in one build.
 */
function fixedReadPause(): void {
  const ms = process.env.BENCH_READ_PAUSE_MS;
  if (!ms) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cadence = require('../../src/change-capture/read-cadence') as { pauseAfterRead(): number };
  cadence.pauseAfterRead = () => Number(ms);
}

/**
 * CPU (ms) used so far by each backend of the module's own connections in this database: every
 * client backend but the probe's and pgbench's (an autovacuum worker on the bench tables used to
 * be counted as the reader's). Read from /proc, so PostgreSQL must run on this machine.
 */
async function moduleBackendCpu(probe: Client): Promise<Map<number, number>> {
  const { rows } = await probe.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND application_name <> 'pgbench' AND backend_type = 'client backend'`,
  );
  const cpu = new Map<number, number>();
  for (const { pid } of rows) {
    try {
      cpu.set(pid, procUsage(pid).cpuMs);
    } catch {
      // The backend ended between the query and the read.
    }
  }
  return cpu;
}
