import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * A TypeScript file run as its own Node process (`node -r ts-node/register/transpile-only`),
 * talking JSON lines: it writes one JSON object per line on stdout, and reads commands the same way
 * on stdin. Load generators and the app under test each get a process (and an event loop) of their
 * own, as the issue asks.
 */
export interface BenchChild {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves with the next stdout message that `match` accepts (earlier ones are kept). */
  next<T = Record<string, unknown>>(
    match: (message: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<T>;
  send(message: unknown): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** If the bench process dies, take its children with it (no orphan servers or load generators). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export function spawnTs(
  name: string,
  file: string,
  args: string[] = [],
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): BenchChild {
  installExitHook();
  const child = spawn(
    process.execPath,
    [...nodeArgs, '-r', 'ts-node/register/transpile-only', file, ...args],
    {
      env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  running.add(child);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      running.delete(child);
      resolve();
    }),
  );
  const inbox: Record<string, unknown>[] = [];
  const waiters: Array<{
    match: (m: Record<string, unknown>) => boolean;
    resolve: (m: Record<string, unknown>) => void;
  }> = [];
  let stderr = '';

  createInterface({ input: child.stdout! }).on('line', (line) => {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      process.stderr.write(`[${name}] ${line}\n`);
      return;
    }
    const waiter = waiters.find((w) => w.match(message));
    if (waiter) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(message);
    } else {
      inbox.push(message);
    }
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderr = `${stderr}${line}\n`.slice(-4000);
    if (process.env.BENCH_CHILD_LOGS) process.stderr.write(`[${name}] ${line}\n`);
  });
  child.stdin!.on('error', () => undefined); // the child may be gone already

  return {
    name,
    process: child,
    next<T>(match: (m: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<T> {
      const queued = inbox.find(match);
      if (queued) {
        inbox.splice(inbox.indexOf(queued), 1);
        return Promise.resolve(queued as T);
      }
      return new Promise<T>((resolve, reject) => {
        const waiter = {
          match,
          resolve: (m: Record<string, unknown>) => {
            clearTimeout(timer);
            child.off('exit', onExit);
            resolve(m as T);
          },
        };
        const fail = (why: string) => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
          child.off('exit', onExit);
          reject(new Error(`${name}: ${why}${stderr ? `; stderr:\n${stderr}` : ''}`));
        };
        const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
        const onExit = (code: number | null, signal: string | null) => {
          clearTimeout(timer);
          fail(`exited (${code ?? signal}) before answering`);
        };
        child.once('exit', onExit);
        waiters.push(waiter);
      });
    },
    send(message: unknown): void {
      child.stdin!.write(`${JSON.stringify(message)}\n`);
    },
    async stop(graceMs = 5000): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Writes one JSON line on stdout (the child side of the protocol). */
export function report(message: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Calls `handle` for every JSON line on stdin (the child side of the protocol). */
export function onCommands(handle: (command: Record<string, unknown>) => void): void {
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim()) handle(JSON.parse(line) as Record<string, unknown>);
  });
}
