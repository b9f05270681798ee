import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loaderArgs, type Loader } from './child-loaders';

/**
 * The one way a bench runs code in another process (a server under test, a load generator, poll
 * clients): fork a TypeScript file, wait until it says it is ready, then request/reply over Node's
 * IPC channel. A child answers `{id, type, body}` with `{id, ok, result | error}`; every child
 * answers `clock` (for calibrate) and `close` (runs its onClose, then exits).
 */
export type { Loader } from './child-loaders';
type Body = Record<string, unknown>;

export interface StartOptions {
  /** How the .ts file is loaded (child-loaders.ts). Default 'transpile'. */
  loader?: Loader;
  args?: string[];
  env?: Record<string, string>;
  /** Extra node flags (--expose-gc, --cpu-prof ...). */
  nodeArgs?: string[];
  readyTimeoutMs?: number;
}

const running = new Set<ChildProcess>();
let exitHook = false;

/** If the bench process dies, its children die with it (no orphan server or load generator). */
function killOnExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export class Child<Info = Body> {
  /** The child's clock minus this process's clock, in ms (see calibrate). */
  offsetMs = 0;
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void }
  >();
  private stderrTail = '';
  private readonly exited: Promise<void>;
  /** What the child said when it was ready (its URL, its port ...). */
  info!: Info;

  private constructor(
    readonly name: string,
    readonly process: ChildProcess,
  ) {
    running.add(process);
    this.exited = new Promise((resolve) =>
      process.once('exit', (code, signal) => {
        running.delete(process);
        this.failAll(`exited (${code ?? signal})`);
        resolve();
      }),
    );
    process.stderr!.on('data', (chunk: Buffer) => {
      this.stderrTail = `${this.stderrTail}${chunk.toString('utf8')}`.slice(-4000);
      if (globalThis.process.env.BENCH_CHILD_LOGS)
        globalThis.process.stderr.write(`[${name}] ${chunk}`);
    });
    process.on('message', (m: { id?: number; ok?: boolean; result?: unknown; error?: string }) => {
      const waiter = m.id === undefined ? undefined : this.pending.get(m.id);
      if (!waiter) return;
      this.pending.delete(m.id!);
      if (m.ok) waiter.resolve(m.result);
      else waiter.reject(new Error(`${name}: ${m.error}`));
    });
  }

  /** Forks `file` and resolves once it reported ready. */
  static async start<Info = Body>(
    name: string,
    file: string,
    opts: StartOptions = {},
  ): Promise<Child<Info>> {
    killOnExit();
    const { file: entry, execArgv, env } = loaderArgs(opts.loader ?? 'transpile', file);
    // BENCH_PROFILE=polling-app: a V8 CPU profile of the child of that name in /tmp/bench-prof.
    const profile =
      process.env.BENCH_PROFILE === name ? ['--cpu-prof', '--cpu-prof-dir=/tmp/bench-prof'] : [];
    const proc = fork(entry, opts.args ?? [], {
      execArgv: [...(opts.nodeArgs ?? []), ...profile, ...execArgv],
      env: { ...process.env, ...env, ...opts.env },
      serialization: 'advanced', // typed arrays travel as binary, not JSON
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    });
    const child = new Child<Info>(name, proc);
    const timeoutMs = opts.readyTimeoutMs ?? 60_000;
    child.info = await new Promise<Info>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`${name}: not ready within ${timeoutMs} ms${child.tail()}`));
      }, timeoutMs);
      const onExit = (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        reject(new Error(`${name}: exited (${code ?? signal}) before it was ready${child.tail()}`));
      };
      proc.once('exit', onExit);
      const onMessage = (m: { ready?: boolean; info?: Info }) => {
        if (!m.ready) return;
        clearTimeout(timer);
        proc.off('message', onMessage);
        proc.off('exit', onExit);
        resolve(m.info as Info);
      };
      proc.on('message', onMessage);
    });
    return child;
  }

  get pid(): number {
    return this.process.pid!;
  }

  request<T = Body>(type: string, body: object = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new Error(`${this.name}: no answer to ${type} within ${timeoutMs} ms${this.tail()}`),
        );
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.process.send({ id, type, body });
    });
  }

  /** The child's resident memory and CPU time so far, from /proc (no request: works while busy). */
  usage(): ProcUsage {
    return procUsage(this.pid);
  }

  /** Asks the child to close; SIGKILL after `graceMs`. Resolves when it has exited. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const timer = setTimeout(() => this.process.kill('SIGKILL'), graceMs);
    this.request('close', {}, graceMs).catch(() => undefined);
    await this.exited;
    clearTimeout(timer);
  }

  private failAll(why: string): void {
    for (const p of this.pending.values())
      p.reject(new Error(`${this.name}: ${why}${this.tail()}`));
    this.pending.clear();
  }

  private tail(): string {
    return this.stderrTail ? `; stderr:\n${this.stderrTail}` : '';
  }
}

/** Wall-clock time in ms with sub-ms precision, comparable between processes on one machine. */
export const clock = (): number => performance.timeOrigin + performance.now();

/**
 * Estimates the child's clock offset the NTP way: of `samples` round trips, the one with the
 * shortest round trip gives offset = child time − midpoint of send and receive.
 */
export async function calibrate(child: Child<unknown>, samples = 30): Promise<{ rttMs: number }> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < samples; i++) {
    const sent = clock();
    const { now } = await child.request<{ now: number }>('clock');
    const received = clock();
    if (received - sent < best.rtt)
      best = { rtt: received - sent, offset: now - (sent + received) / 2 };
  }
  child.offsetMs = best.offset;
  return { rttMs: best.rtt };
}

export interface ProcUsage {
  rssBytes: number;
  /** User + system CPU time, ms. */
  cpuMs: number;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** Any local process's RSS and CPU time (a child, a PostgreSQL backend); throws once it is gone. */
export function procUsage(pid: number): ProcUsage {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // After the command name (which may hold spaces): utime, stime and rss (pages) are fields 14,
  // 15 and 24 of the line, 12, 13 and 22 here.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
  return {
    rssBytes: rssKb * 1024,
    cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND,
  };
}

/** A request handler; its body type is its own (method syntax: parameters compare bivariantly). */
type Handler = { handle(body: Body): unknown }['handle'];

/**
 * The child side: answers requests with `handlers`, plus `clock` and `close` (runs `onClose`, then
 * exits). The child also exits when the bench goes away (IPC channel closed). Call `ready` once
 * it can take work.
 */
export function serve(
  handlers: Record<string, Handler>,
  onClose: () => Promise<void> | void = () => undefined,
): { ready(info?: unknown): void } {
  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      try {
        await onClose();
      } finally {
        setImmediate(() => process.exit(0));
      }
    })());
  const all: Record<string, Handler> = {
    clock: () => ({ now: clock() }),
    close: async () => {
      await close();
      return {};
    },
    ...handlers,
  };
  process.on('message', (m: { id: number; type: string; body: Body }) => {
    void (async () => {
      try {
        const handler = all[m.type];
        if (!handler) throw new Error(`unknown request ${m.type}`);
        process.send!({ id: m.id, ok: true, result: await handler(m.body) });
      } catch (error) {
        process.send!({ id: m.id, ok: false, error: (error as Error).stack ?? String(error) });
      }
    })();
  });
  process.on('disconnect', () => void close());
  return { ready: (info: unknown = {}) => process.send!({ ready: true, info }) };
}
