import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BenchResult, formatTable } from './report';
import { heldPolls } from './held-polls';
import { httpRates } from './http-rates';
import { latency } from './latency';
import { pruneLatency } from './prune-latency';
import { readerThroughput } from './reader-throughput';
import { writeThroughput } from './write-throughput';

const serverUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const seconds = Number(process.env.BENCH_SECONDS || 5);
const runs = Number(process.env.BENCH_RUNS || 3);
const clients = (process.env.BENCH_CLIENTS || '1,16').split(',').map(Number);
const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const log = (line: string) => console.error(line);
/** BENCH_ONLY=latency,reader-throughput runs only the named benches (names below). */
const only = (process.env.BENCH_ONLY || '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

/** Every bench module; each returns rows for the one combined table. */
const benches: Array<{ name: string; run: () => Promise<BenchResult> }> = [
  {
    name: 'write-throughput',
    run: () => writeThroughput({ serverUrl, seconds, runs, clients, log }),
  },
  { name: 'reader-throughput', run: () => readerThroughput({ serverUrl, redisUrl, runs, log }) },
  { name: 'http-rates', run: () => httpRates({ serverUrl, seconds, runs, redisUrl, log }) },
  { name: 'held-polls', run: () => heldPolls({ serverUrl, runs, log }) },
  {
    name: 'latency',
    run: () =>
      latency({
        serverUrl,
        runs,
        seconds: Number(process.env.BENCH_LATENCY_SECONDS || 10),
        waiters: Number(process.env.BENCH_LATENCY_WAITERS || 1000),
        rate: Number(process.env.BENCH_LATENCY_RATE || 100),
        clientProcesses: Number(process.env.BENCH_LATENCY_CLIENT_PROCS || 1),
        log,
      }),
  },
  { name: 'prune-latency', run: () => pruneLatency({ serverUrl, runs, log }) },
];

async function main(): Promise<void> {
  const unknown = only.filter((name) => !benches.some((b) => b.name === name));
  if (unknown.length) throw new Error(`BENCH_ONLY: unknown bench ${unknown.join(', ')}`);
  const selected = only.length ? benches.filter((b) => only.includes(b.name)) : benches;
  const results: BenchResult[] = [];
  for (const bench of selected) results.push(await bench.run());
  const rows = results.flatMap((r) => r.rows);
  const notes = results.flatMap((r) => r.notes);

  console.log(`\n${formatTable(rows)}\n`);
  for (const note of notes) console.log(`- ${note}`);

  const dir = join(__dirname, 'results');
  await mkdir(dir, { recursive: true });
  // A partial run (BENCH_ONLY) does not overwrite the full table's file.
  const file = join(dir, only.length ? `only-${only.join('+')}.json` : 'latest.json');
  const json = {
    date: new Date().toISOString(),
    benches: selected.map((b) => b.name),
    seconds,
    runs,
    clients,
    rows,
    notes,
  };
  await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nwritten to ${file}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
