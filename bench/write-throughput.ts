import { cpus } from 'node:os';
import { Client } from 'pg';
import { installChangeLogSql } from '../src/change-capture/schema/change-log.sql';
import { createBenchDatabase } from './bench-database';
import { pgbench } from './pgbench';
import { type BenchResult, type BenchRow, median } from './report';

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

interface Scenario {
  key: string;
  row: string;
  script: string;
  /** Forced wake gate value; undefined when the table is not tracked. */
  gate?: 0 | 1;
}

const SCENARIOS: Scenario[] = [
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
    key: 'notify',
    row: 'reference: plain INSERT + pg_notify per transaction',
    script: `BEGIN;\n${INSERT('plain_items')}SELECT pg_notify('bench_x', '');\nCOMMIT;\n`,
  },
];

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

    const rows: BenchRow[] = [];
    for (const clients of opts.clients) {
      const samples = new Map<string, number[]>(SCENARIOS.map((s) => [s.key, []]));
      for (let run = 0; run < opts.runs; run++) {
        // Interleave (and rotate) scenarios so drift on the machine hits all of them alike.
        const order = SCENARIOS.map((_, i) => SCENARIOS[(i + run) % SCENARIOS.length]);
        for (const s of order) {
          await reset(client, s.gate);
          const tps = await pgbench({
            url: db.url,
            script: s.script,
            clients,
            seconds: opts.seconds,
          });
          if (s.gate !== undefined) await checkTracked(client, s.gate);
          samples.get(s.key)!.push(tps);
          log(
            `write-throughput: ${clients} clients, run ${run + 1}, ${s.key}: ${tps.toFixed(0)} tps`,
          );
        }
      }
      const plain = median(samples.get('plain')!);
      for (const s of SCENARIOS) {
        const values = samples.get(s.key)!;
        rows.push({
          bench: 'write-throughput',
          row: s.row,
          clients,
          medianTps: median(values),
          minTps: Math.min(...values),
          maxTps: Math.max(...values),
          ratioVsPlain: median(values) / plain,
          samples: values,
        });
      }
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

/** Guards the numbers: every tracked insert was captured, and nothing moved the forced gate. */
async function checkTracked(client: Client, gate: 0 | 1): Promise<void> {
  const { rows } = await client.query(`
    SELECT (SELECT count(*) FROM tracked_items)::int AS items,
           (SELECT count(*) FROM polling_changes)::int AS changes,
           (SELECT last_value FROM polling_wake_gate)::int AS gate`);
  const { items, changes, gate: after } = rows[0];
  if (items === 0 || items !== changes) {
    throw new Error(`write-throughput: ${items} tracked rows but ${changes} change rows`);
  }
  if (after !== gate) throw new Error(`write-throughput: gate moved from ${gate} to ${after}`);
}

function notes(rows: BenchRow[], opts: WriteThroughputOptions, version: string): string[] {
  const at = (clients: number, prefix: string) =>
    rows.find((r) => r.clients === clients && r.row.startsWith(prefix));
  const top = Math.max(...opts.clients);
  const goal = (label: string, r?: BenchRow) =>
    r
      ? `${label} ${r.ratioVsPlain.toFixed(2)}× (${r.ratioVsPlain >= 0.8 ? 'met' : 'NOT met'})`
      : '';
  return [
    `PostgreSQL ${version}, ${cpus().length} CPU cores; pgbench -n -M prepared -j 2, ` +
      `${opts.runs} run(s) × ${opts.seconds} s per row, one autocommit INSERT per transaction; ` +
      'scenarios interleaved, tables and polling_changes truncated + CHECKPOINT before each run.',
    'No change reader runs during the tracked rows: the wake gate is forced with setval() before ' +
      'each run (1 = armed, 0 = closed) and checked unchanged after it. A live reader closes the ' +
      'gate while awake and re-arms it when idle, so a busy feed mostly runs "gate closed".',
    `Goal (issue): tracked ≥ 0.80× plain INSERT at ${top} writers — ` +
      [
        goal('gate closed:', at(top, 'tracked, reader awake')),
        goal('gate armed:', at(top, 'tracked, reader idle')),
      ]
        .filter(Boolean)
        .join('; ') +
      '.',
  ];
}
