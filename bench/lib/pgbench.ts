import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PgbenchOptions {
  url: string;
  /** Custom transaction script (pgbench -f). */
  script: string;
  clients: number;
  seconds: number;
}

/** Runs pgbench with a custom script and returns its tps (excluding connection time). */
export async function pgbench(opts: PgbenchOptions): Promise<number> {
  const u = new URL(opts.url);
  const dir = await mkdtemp(join(tmpdir(), 'polling-bench-'));
  const file = join(dir, 'script.sql');
  try {
    await writeFile(file, opts.script);
    const args = [
      ...['-h', decodeURIComponent(u.hostname) || '127.0.0.1', '-p', u.port || '5432'],
      ...(u.username ? ['-U', decodeURIComponent(u.username)] : []),
      ...['-n', '-f', file, '-T', String(opts.seconds), '-c', String(opts.clients)],
      ...['-j', '2', '-M', 'prepared'],
      decodeURIComponent(u.pathname.slice(1)),
    ];
    const env = { ...process.env, PGPASSWORD: decodeURIComponent(u.password) || undefined };
    const { stdout } = await run('pgbench', args, { env, timeout: (opts.seconds + 60) * 1000 });
    // A failed transaction would make the tps meaningless for this comparison.
    const failed = /number of failed transactions: (\d+)/.exec(stdout);
    if (failed && Number(failed[1]) > 0)
      throw new Error(`pgbench: ${failed[1]} failed transactions`);
    const tps = /^tps = ([\d.]+)/m.exec(stdout);
    if (!tps) throw new Error(`pgbench printed no tps line:\n${stdout}`);
    return Number(tps[1]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
