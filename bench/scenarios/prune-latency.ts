import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Client } from 'pg';
import { filter, firstValueFrom } from 'rxjs';
import { PollingModule } from '../../src';
import { ChangeBus } from '../../src/change-bus/change-bus.service';
import { ChangeReader } from '../../src/change-capture/change-reader.service';
import { createBenchDatabase } from '../lib/bench-database';
import { type BenchResult, type Scenario, type BenchRow, figureOf, median } from '../lib/report';

export interface PruneLatencyOptions {
  /** Server to bench on; a fresh database is created there and dropped afterwards. */
  serverUrl: string;
  runs: number;
  /** Change-log rows past retention to prune (default 1,500,000). */
  backlog?: number;
  /** Measured seconds without a prune, for the baseline (default 5). */
  baselineSeconds?: number;
  /** Pause between two measured writes (default 50 ms). */
  pauseMs?: number;
  log?: (line: string) => void;
}

interface RunReport {
  baseline: number[];
  duringPrune: number[];
  pruneMs: number;
}

const PRUNE_TIMEOUT_MS = 300_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * Commit → index latency while the leader prunes a large backlog past retention (issue 13): one
 * write at a time on one feed, timed from its COMMIT to the bus notice that wakes long polls, first
 * with nothing to prune (baseline), then while the pruner deletes `backlog` old rows.
 */
export async function pruneLatency(opts: PruneLatencyOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const backlog = opts.backlog ?? 1_500_000;
  const reports: RunReport[] = [];
  for (let run = 1; run <= opts.runs; run++) {
    reports.push(await oneRun(opts, backlog));
    const r = reports[reports.length - 1];
    log(
      `prune-latency run ${run}: p99 ${quantile(r.duringPrune, 0.99)} ms during a ` +
        `${(r.pruneMs / 1000).toFixed(1)} s prune (baseline p99 ${quantile(r.baseline, 0.99)} ms)`,
    );
  }
  const rows: BenchRow[] = [];
  for (const q of [0.5, 0.99]) {
    const figure = figureOf(reports.map((r) => quantile(r.duringPrune, q)));
    const base = figureOf(reports.map((r) => quantile(r.baseline, q)));
    rows.push({
      bench: 'prune-latency',
      row: `commit → index p${q * 100} during a prune of ${backlog} rows`,
      unit: 'ms',
      figure,
      baseline: { label: 'no prune', ...base },
      ratio: base.median > 0 ? figure.median / base.median : undefined,
    });
  }
  rows.push({
    bench: 'prune-latency',
    row: `prune of ${backlog} rows past retention (app running)`,
    unit: 's',
    figure: figureOf(reports.map((r) => r.pruneMs / 1000)),
  });
  const writes = median(reports.map((r) => r.duringPrune.length));
  return {
    rows,
    notes: [
      `prune-latency: one write per ${opts.pauseMs ?? 50} ms on one feed, ~${writes} writes ` +
        'timed per prune; the pruner deletes in chunks on its own connection.',
    ],
  };
}

async function oneRun(opts: PruneLatencyOptions, backlog: number): Promise<RunReport> {
  const db = await createBenchDatabase(opts.serverUrl);
  const writer = new Client({ connectionString: db.url });
  let app: INestApplicationContext | null = null;
  try {
    await writer.connect();
    await writer.query('CREATE TABLE items (id bigserial PRIMARY KEY, run int NOT NULL)');
    app = await NestFactory.createApplicationContext(
      PollingModule.forRoot({
        postgres: { url: db.url },
        tables: [{ table: 'items', partition: 'run' }],
        installSchema: true,
        retention: { maxAgeMs: 60_000 },
        reader: { pruneIntervalMs: 1000 },
      }),
      { logger: ['error'] },
    );
    await app.get(ChangeReader).whenLive();
    const bus = app.get(ChangeBus);
    const pauseMs = opts.pauseMs ?? 50;
    const deliveryMs = async (): Promise<number> => {
      const seen = firstValueFrom(
        bus.notices$.pipe(filter((n) => n.kind === 'changes' && n.feeds.includes('items:1'))),
      );
      await writer.query('INSERT INTO items (run) VALUES (1)');
      const committed = performance.now();
      await seen;
      return Math.round((performance.now() - committed) * 10) / 10;
    };
    // Through the primary key (the backlog's xid), not a count: a scan over 1.5 M rows would
    // load the machine and show in the very latency measured.
    const left = async () =>
      (await writer.query("SELECT 1 FROM polling_changes WHERE xid = '3'::xid8 LIMIT 1"))
        .rowCount ?? 0;

    const baseline: number[] = [];
    const baselineEnd = Date.now() + (opts.baselineSeconds ?? 5) * 1000;
    while (Date.now() < baselineEnd) {
      baseline.push(await deliveryMs());
      await sleep(pauseMs);
    }
    // Rows the reader consumed long ago: xids below its checkpoint, written an hour back.
    await writer.query(
      `INSERT INTO polling_changes (xid, feed, resource_id, op, changed_at)
       SELECT '3'::xid8, 'old', g::text, 'u', now() - interval '1 hour'
       FROM generate_series(1, $1::int) g`,
      [backlog],
    );
    const started = Date.now();
    const duringPrune: number[] = [];
    for (let i = 1; Date.now() - started < PRUNE_TIMEOUT_MS; i++) {
      duringPrune.push(await deliveryMs());
      await sleep(pauseMs);
      if (i % 20 === 0 && (await left()) === 0) break;
    }
    const pruneMs = Date.now() - started;
    if ((await left()) > 0) throw new Error(`the backlog was not pruned in ${PRUNE_TIMEOUT_MS} ms`);
    return { baseline, duringPrune, pruneMs };
  } finally {
    await writer.end().catch(() => undefined);
    await app?.close();
    await db.drop();
  }
}

export const scenario: Scenario = { name: 'prune-latency', run: pruneLatency };
