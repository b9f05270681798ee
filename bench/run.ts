import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BenchResult, formatTable } from './report';
import { writeThroughput } from './write-throughput';

const serverUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const seconds = Number(process.env.BENCH_SECONDS || 5);
const runs = Number(process.env.BENCH_RUNS || 3);
const clients = (process.env.BENCH_CLIENTS || '1,16').split(',').map(Number);

/** Every bench module; each returns rows for the one combined table. */
const benches: Array<() => Promise<BenchResult>> = [
  () => writeThroughput({ serverUrl, seconds, runs, clients, log: (line) => console.error(line) }),
];

async function main(): Promise<void> {
  const results: BenchResult[] = [];
  for (const bench of benches) results.push(await bench());
  const rows = results.flatMap((r) => r.rows);
  const notes = results.flatMap((r) => r.notes);

  console.log(`\n${formatTable(rows)}\n`);
  for (const note of notes) console.log(`- ${note}`);

  const dir = join(__dirname, 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'latest.json');
  const json = { date: new Date().toISOString(), seconds, runs, clients, rows, notes };
  await writeFile(file, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`\nwritten to ${file}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
