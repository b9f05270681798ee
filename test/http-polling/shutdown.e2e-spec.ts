import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, get, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createItemsTable } from '../support/polling-app';

interface ChangesBody {
  changes: { id: string; op: string }[];
  cursor: string;
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

const HELD = 200;
const ROOT = join(__dirname, '..', '..');

/** A GET over node:http that also resolves `connected` once its socket is connected. */
function send(url: string, agent: Agent) {
  let onConnect!: () => void;
  const connected = new Promise<void>((resolve) => (onConnect = resolve));
  const reply = new Promise<Reply>((resolve, reject) => {
    const request = get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    request.on('error', reject);
    request.on('socket', (socket) => {
      if (socket.connecting) socket.once('connect', onConnect);
      else onConnect();
    });
  });
  return { reply, connected };
}

/** Starts test/fixtures/items-main.ts in its own process; resolves with its port when it serves. */
function startChild(databaseUrl: string): { child: ChildProcess; port: Promise<number> } {
  const child = spawn(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', join('test', 'fixtures', 'items-main.ts')],
    {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl, TS_NODE_PROJECT: 'tsconfig.json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const port = new Promise<number>((resolve, reject) => {
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n')) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`items-main exited (${code ?? signal}) before serving:\n${stderr}`)),
    );
  });
  return { child, port };
}

describe('shutdown with held long polls (separate process)', () => {
  let db: TestDatabase;
  let child: ChildProcess | null = null;
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
  });

  afterAll(async () => {
    agent.destroy();
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child!.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    }
    await db?.drop();
  });

  it('answers all 200 held polls on SIGTERM (204 with the cursor or 503) and exits 0 within 5 s', async () => {
    const started = startChild(db.url);
    child = started.child;
    const exit = new Promise<Exit>((resolve) =>
      started.child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
    );
    const url = `http://127.0.0.1:${await started.port}`;

    const head = await send(`${url}/runs/1/changes`, agent).reply;
    expect(head.status).toBe(200);
    const since = (JSON.parse(head.body) as ChangesBody).cursor;

    // Give the fixture's TypeORM pool an open connection: it must not keep the process alive.
    const writer = new Client(db.config);
    await writer.connect();
    try {
      const start9 = (
        JSON.parse((await send(`${url}/runs/9/changes`, agent).reply).body) as ChangesBody
      ).cursor;
      await writer.query("INSERT INTO items (run, body) VALUES (9, 'before shutdown')");
      const changed = await send(`${url}/runs/9/changes?since=${start9}&wait=5`, agent).reply;
      expect(changed.status).toBe(200);
      expect((JSON.parse(changed.body) as ChangesBody).changes).toHaveLength(1);
    } finally {
      await writer.end();
    }

    const polls = Array.from({ length: HELD }, () =>
      send(`${url}/runs/1/changes?since=${since}&wait=30`, agent),
    );
    const replies = Promise.allSettled(polls.map((poll) => poll.reply));
    await Promise.all(polls.map((poll) => poll.connected));
    await new Promise((resolve) => setTimeout(resolve, 500)); // every poll is held by now
    let early = 0;
    for (const poll of polls)
      void poll.reply.then(
        () => early++,
        () => early++,
      );
    await new Promise((resolve) => setImmediate(resolve));
    expect(early).toBe(0);

    const signalledAt = Date.now();
    started.child.kill('SIGTERM');
    const outcomes = await replies;

    // A request after the signal: refused, reset or 503, never held.
    const late = await send(`${url}/runs/1/changes?since=${since}&wait=30`, agent).reply.then(
      (reply) => `${reply.status}`,
      (error: NodeJS.ErrnoException) => error.code ?? error.message,
    );
    expect(['503', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE']).toContain(late);

    const errors = outcomes.flatMap((o) =>
      o.status === 'rejected' ? [String((o.reason as Error).message)] : [],
    );
    expect(errors).toEqual([]);
    const wrong = outcomes.flatMap((o) => {
      if (o.status !== 'fulfilled') return [];
      const { status, headers } = o.value;
      if (status === 204 && headers['poll-cursor'] === since) return [];
      if (status === 503 && Number(headers['retry-after']) >= 1) return [];
      return [`${status} cursor=${String(headers['poll-cursor'])}`];
    });
    expect(wrong).toEqual([]);

    const timeout = new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000).unref());
    const exited = await Promise.race([exit, timeout]);
    expect(exited).not.toBeNull();
    expect(exited).toEqual({ code: 0, signal: null, at: expect.any(Number) });
    expect(exited!.at - signalledAt).toBeLessThan(5000);
  });
});
