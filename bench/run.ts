import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BenchResult, type BenchSettings, formatTable, type Scenario } from './lib/report';
import { scenario as cacheCollapse } from './scenarios/cache-collapse';
import { scenario as heldPolls } from './scenarios/held-polls';
import { scenario as httpRates } from './scenarios/http-rates';
import { scenario as latency } from './scenarios/latency';
import { scenario as pruneLatency } from './scenarios/prune-latency';
import { scenario as readerThroughput } from './scenarios/reader-throughput';
import { scenario as sseMemory } from './scenarios/sse-memory';
import { scenario as writeThroughput } from './scenarios/write-throughput';

/** Every bench, in the order of the table; a new one is a file in scenarios/ and a line here. */
const benches: Scenario[] = [
  writeThroughput,
  readerThroughput,
  httpRates,
  heldPolls,
  latency,
  pruneLatency,
  sseMemory,
  cacheCollapse,
];

const settings: BenchSettings = {
  serverUrl: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
  redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
  seconds: Number(process.env.BENCH_SECONDS || 5),
  runs: Number(process.env.BENCH_RUNS || 3),
  clients: (process.env.BENCH_CLIENTS || '1,16').split(',').map(Number),
  log: (line: string) => console.error(line),
};
/** BENCH_ONLY=latency,reader-throughput runs only the named benches. */
const only = (process.env.BENCH_ONLY || '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);

async function main(): Promise<void> {
  const unknown = only.filter((name) => !benches.some((b) => b.name === name));
  if (unknown.length) throw new Error(`BENCH_ONLY: unknown bench ${unknown.join(', ')}`);
  const selected = only.length ? benches.filter((b) => only.includes(b.name)) : benches;
  const results: BenchResult[] = [];
  for (const bench of selected) results.push(await bench.run(settings));
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
    seconds: settings.seconds,
    runs: settings.runs,
    clients: settings.clients,
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
