import { type ChildProcess, fork } from 'node:child_process';

/**
 * Request/reply over Node's IPC channel between the held-polls bench and its child processes
 * (the servers under test and the poll clients), forked as plain JavaScript (see
 * held-polls-build.ts). A child answers `{id, cmd, args}` with `{id, ok, result | error}` and says
 * `{ready}` once.
 */
interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

const running = new Set<ChildProcess>();
let exitHook = false;

/** If the bench dies, its children die with it (no orphan server holding 19k sockets). */
function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export class IpcChild {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private readonly exited: Promise<void>;
  private stderrTail = '';

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    running.add(proc);
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        running.delete(proc);
        for (const { reject } of this.pending.values()) {
          reject(new Error(`${name} exited (${code ?? signal})${this.tail()}`));
        }
        this.pending.clear();
        resolve();
      }),
    );
    proc.on('message', (message: Reply) => {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.result);
      else waiter.reject(new Error(`${name}: ${message.error}`));
    });
    proc.stderr?.on('data', (chunk: Buffer) => {
      this.stderrTail = `${this.stderrTail}${chunk.toString('utf8')}`.slice(-4000);
      if (process.env.BENCH_CHILD_LOGS) process.stderr.write(chunk);
    });
  }

  /** Forks `file` (JavaScript) and resolves once it reports ready, with what it reported. */
  static async start<T = unknown>(
    name: string,
    file: string,
    args: string[],
    nodeArgs: string[] = [],
    timeoutMs = 60_000,
  ): Promise<{ child: IpcChild; ready: T }> {
    installExitHook();
    const proc = fork(file, args, {
      execArgv: nodeArgs,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    const child = new IpcChild(name, proc);
    const ready = await new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`${name} not ready within ${timeoutMs} ms${child.tail()}`));
      }, timeoutMs);
      const onMessage = (m: { ready?: T }) => {
        if (m.ready === undefined) return;
        clearTimeout(timer);
        proc.off('message', onMessage);
        resolve(m.ready);
      };
      proc.on('message', onMessage);
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code ?? signal}) before it was ready${child.tail()}`));
      });
    });
    return { child, ready };
  }

  call<T>(cmd: string, args: unknown = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: no answer to ${cmd} within ${timeoutMs} ms`));
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
      this.proc.send({ id, cmd, args });
    });
  }

  /** Asks the child to exit (`exit` command), SIGKILL after `graceMs`; resolves once it is gone. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    this.call('exit', {}, graceMs).catch(() => undefined);
    await this.exited;
    clearTimeout(timer);
  }

  private tail(): string {
    return this.stderrTail ? `; stderr:\n${this.stderrTail}` : '';
  }
}

type Handler = (args: never) => unknown;

/**
 * The child side: answers commands with `handlers`; `exit` runs `onExit` and ends the process.
 * The child also ends when the parent goes away (IPC channel closed).
 */
export function serveCommands(
  handlers: Record<string, Handler>,
  onExit: () => Promise<void> | void = () => undefined,
): { ready(info: unknown): void } {
  let exiting = false;
  const exit = async () => {
    if (exiting) return;
    exiting = true;
    try {
      await onExit();
    } finally {
      process.exit(0);
    }
  };
  process.on('disconnect', () => void exit());
  process.on('message', async (message: { id: number; cmd: string; args: never }) => {
    const { id, cmd, args } = message;
    if (cmd === 'exit') {
      process.send?.({ id, ok: true });
      await exit();
      return;
    }
    try {
      const handler = handlers[cmd];
      if (!handler) throw new Error(`unknown command ${cmd}`);
      const result = await handler(args);
      process.send?.({ id, ok: true, result });
    } catch (error) {
      process.send?.({ id, ok: false, error: (error as Error).stack ?? String(error) });
    }
  });
  return { ready: (info: unknown) => process.send?.({ ready: info }) };
}

/** Wall-clock time in ms with sub-ms precision, comparable between processes on one machine. */
export function clock(): number {
  return performance.timeOrigin + performance.now();
}
