import { cpus } from 'node:os';
import { Client } from 'pg';
import { installChangeLogSql } from '../../src/change-capture/schema/change-log.sql';
import { createBenchDatabase } from '../lib/bench-database';
import { type LiveReaderReport, withLiveReader } from '../lib/live-reader';
import { describeWaits, sampleWriters, type WriterWaits } from '../lib/writer-waits';
import { pgbench } from '../lib/pgbench';
import { type BenchResult, type Scenario, type BenchRow, figureOf, median } from '../lib/report';

export interface WriteThroughputOptions {
  /** Server to bench on; a fresh database is created there and dropped afterwards. */
  serverUrl: string;
  seconds: number;
  runs: number;
  clients: number[];
  log?: (line: string) => void;
}

const INSERT = (table: string) =>
  `INSERT INTO ${table} (channel, body) VALUES ('c' || (random() * 10)::int, 'x');\n`;

interface Load {
  key: string;
  row: string;
  script: string;
  /** Forced wake gate value; undefined when the table is not tracked or the reader drives it. */
  gate?: 0 | 1;
  /** Tracked, with the module's real ChangeReader running and driving the gate. */
  live?: boolean;
}

const LOADS: Load[] = [
  { key: 'plain', row: 'plain INSERT (baseline)', script: INSERT('plain_items') },
  {
    key: 'armed',
    row: 'tracked, reader idle → gate armed (every commit NOTIFYs)',
    script: INSERT('tracked_items'),
    gate: 1,
  },
  {
    key: 'closed',
    row: 'tracked, reader awake → gate closed (no NOTIFY)',
    script: INSERT('tracked_items'),
    gate: 0,
  },
  {
    key: 'live',
    row: 'tracked, live ChangeReader (reader drives the gate)',
    script: INSERT('tracked_items'),
    live: true,
  },
  {
    key: 'notify',
    row: 'reference: plain INSERT + pg_notify per transaction',
    script: `BEGIN;\n${INSERT('plain_items')}SELECT pg_notify('bench_x', '');\nCOMMIT;\n`,
  },
];

/** The live reader's report with the writers' samples of the same load. */
type LiveReport = LiveReaderReport & WriterWaits;

const TABLE = (name: string) =>
  `CREATE TABLE ${name} (id bigserial PRIMARY KEY, channel text NOT NULL, body text NOT NULL);`;

/** Cost of change tracking on application writers: plain vs tracked INSERTs under pgbench. */
export async function writeThroughput(opts: WriteThroughputOptions): Promise<BenchResult> {
  const log = opts.log ?? (() => undefined);
  const db = await createBenchDatabase(opts.serverUrl);
  const client = new Client({ connectionString: db.url });
  try {
    await client.connect();
    await client.query('SET client_min_messages = warning');
    await client.query(installChangeLogSql('public'));
    await client.query(TABLE('plain_items') + TABLE('tracked_items'));
    await client.query(`SELECT polling_track('tracked_items', 'id', 'channel')`);
    const version = (await client.query('SHOW server_version')).rows[0].server_version;

    // BENCH_WRITE_LOADS=closed,live (profiling): only those loads, beside the plain baseline.
    const picked = (process.env.BENCH_WRITE_LOADS ?? '').split(',').filter(Boolean);
    const loads = LOADS.filter(
      (l) => !picked.length || l.key === 'plain' || picked.includes(l.key),
    );
    const rows: BenchRow[] = [];
    for (const clients of opts.clients) {
      const samples = new Map<string, number[]>(loads.map((s) => [s.key, []]));
      const waits = new Map<string, WriterWaits[]>(loads.map((s) => [s.key, []]));
      const live: LiveReport[] = [];
      for (let run = 0; run < opts.runs; run++) {
        // Interleave (and rotate) loads so drift on the machine hits all of them alike.
        const order = loads.map((_, i) => loads[(i + run) % loads.length]);
        for (const s of order) {
          // The live reader starts from an armed gate, as a reader that has just gone idle.
          await reset(client, s.live ? 1 : s.gate);
          // Every load runs beside the same sampler (it costs a little CPU), live or not.
          const load = () =>
            sampleWriters(client, () =>
              pgbench({ url: db.url, script: s.script, clients, seconds: opts.seconds }),
            );
          let sampled: Awaited<ReturnType<typeof load>>;
          let detail = '';
          if (s.live) {
            const { result, report } = await withLiveReader(
              { url: db.url, table: 'tracked_items', partition: 'channel' },
              load,
            );
            sampled = result;
            live.push({ ...report, ...result.writers });
            detail = `, ${describeLive(report)}`;
          } else {
            sampled = await load();
          }
          const { result: tps, writers } = sampled;
          if (s.gate !== undefined || s.live) await checkTracked(client, s.gate);
          samples.get(s.key)!.push(tps);
          waits.get(s.key)!.push(writers);
          log(
            `write-throughput: ${clients} clients, run ${run + 1}, ${s.key}: ${tps.toFixed(0)} tps${detail}; ` +
              `gate armed in ${(100 * writers.armedShare).toFixed(0)}% of ${writers.gateSamples} samples; ` +
              `writers: ${describeWaits(writers.waits)}`,
          );
        }
      }
      const plain = figureOf(samples.get('plain')!);
      for (const s of loads) {
        const values = figureOf(samples.get(s.key)!);
        const tracked = s.key !== 'plain' && s.key !== 'notify';
        const ratio = values.median / plain.median;
        rows.push({
          bench: 'write-throughput',
          row: `${s.row}, ${clients} writer${clients === 1 ? '' : 's'}`,
          unit: 'tps',
          figure: values,
          ...(s.key === 'plain' ? {} : { baseline: { label: 'plain INSERT', ...plain }, ratio }),
          ...(tracked && clients >= 16 ? { goal: '≥ 0.80×', met: ratio >= 0.8 } : {}),
          details: { clients, writers: waits.get(s.key), ...(s.live ? { liveReader: live } : {}) },
        });
      }
      if (live.length) rows.push(readerCpuRow(live, clients));
    }
    return { rows, notes: notes(rows, opts, version) };
  } finally {
    await client.end().catch(() => undefined);
    await db.drop();
  }
}

/** Same starting point for every run: empty tables and change log, forced gate, clean WAL. */
async function reset(client: Client, gate: 0 | 1 | undefined): Promise<void> {
  await client.query('TRUNCATE plain_items, tracked_items, polling_changes RESTART IDENTITY');
  if (gate !== undefined) await client.query(`SELECT setval('polling_wake_gate', $1)`, [gate]);
  await client.query('CHECKPOINT');
}

/** Guards the numbers: every tracked insert was captured, and nothing moved a forced gate. */
async function checkTracked(client: Client, gate: 0 | 1 | undefined): Promise<void> {
  const { rows } = await client.query(`
    SELECT (SELECT count(*) FROM tracked_items)::int AS items,
           (SELECT count(*) FROM polling_changes)::int AS changes,
           (SELECT last_value FROM polling_wake_gate)::int AS gate`);
  const { items, changes, gate: after } = rows[0];
  if (items === 0 || items !== changes) {
    throw new Error(`write-throughput: ${items} tracked rows but ${changes} change rows`);
  }
  if (gate !== undefined && after !== gate)
    throw new Error(`write-throughput: gate moved from ${gate} to ${after}`);
}

function describeLive(r: LiveReaderReport): string {
  const drain = r.drainMs === null ? 'NOT drained within 10 s' : `drained in ${r.drainMs} ms`;
  return (
    `reader indexed ${r.indexedAtEnd}/${r.changesAtEnd} changes by the end of the load ` +
    `(${drain}) in ${r.reads} reads (${r.emptyReads} empty, ${r.heldBackReads} of them held back), reader CPU ${r.readerCpuMs.node.toFixed(0)} ms Node + ${r.readerCpuMs.postgres.toFixed(0)} ms PostgreSQL`
  );
}

/** The live reader's CPU per 1,000 changes it indexed while the writers ran. */
function readerCpuRow(reports: LiveReport[], clients: number): BenchRow {
  const perThousand = (r: LiveReaderReport) =>
    ((r.readerCpuMs.node + r.readerCpuMs.postgres) * 1000) / Math.max(1, r.indexedAtEnd);
  return {
    bench: 'write-throughput',
    row: `reader CPU per 1,000 changes (its Node process + its PostgreSQL backends), ${clients} writer${clients === 1 ? '' : 's'} busy`,
    unit: 'ms',
    figure: figureOf(reports.map(perThousand)),
    details: { clients, readerCpuMs: reports.map((r) => r.readerCpuMs) },
  };
}

/** One line per client count on how the live reader kept up, over all runs. */
function liveNote(row: BenchRow): string {
  const reports = (row.details?.liveReader ?? []) as LiveReport[];
  const lags = reports.map((r) => r.changesAtEnd - r.indexedAtEnd);
  const drains = reports.map((r) => r.drainMs);
  const kept = drains.every((d) => d !== null);
  return (
    `Live reader, ${row.details?.clients} writer(s): indexed a median ${median(reports.map((r) => r.indexedAtEnd))} ` +
    `changes per run; behind by ${median(lags)} rows (max ${Math.max(...lags)}) at the end, ` +
    `${kept ? `caught up within ${Math.max(...(drains as number[]))} ms` : 'did NOT catch up within 10 s in some runs'}; ` +
    `gate armed in a median ${(100 * median(reports.map((r) => r.armedShare))).toFixed(0)}% of samples.`
  );
}

/** Where each load's writers waited (median share per wait event over the runs). */
function waitsNote(row: BenchRow): string {
  const runs = (row.details?.writers ?? []) as WriterWaits[];
  const events = [...new Set(runs.flatMap((r) => Object.keys(r.waits)))];
  const shares = Object.fromEntries(
    events.map((e) => [e, median(runs.map((r) => r.waits[e] ?? 0))] as const),
  );
  return `Writers, ${row.row}: ${describeWaits(shares)}.`;
}

function notes(rows: BenchRow[], opts: WriteThroughputOptions, version: string): string[] {
  return [
    `PostgreSQL ${version}, ${cpus().length} CPU cores; ${opts.runs} run(s) × ${opts.seconds} s per row.`,
    ...rows.filter((r) => r.details?.liveReader).map(liveNote),
    ...rows.filter((r) => r.details?.writers).map(waitsNote),
  ];
}

export const scenario: Scenario = { name: 'write-throughput', run: writeThroughput };
