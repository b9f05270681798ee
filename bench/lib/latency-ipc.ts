import { type ChildProcess, fork } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A common clock for every process of the latency bench: epoch milliseconds with sub-millisecond
 * resolution. All processes run on one machine; what is left of a difference between their time
 * origins is measured by `calibrate` and taken out.
 */
export const clock = (): number => performance.timeOrigin + performance.now();

type Message = Record<string, unknown>;

/** A bench child process (TypeScript, transpiled as it loads), driven by request/reply over IPC. */
export interface IpcChild {
  readonly name: string;
  readonly process: ChildProcess;
  /** What the child said when it was ready (e.g. its port). */
  readonly info: Message;
  /** The child's clock minus this process's clock, in ms (see calibrate). */
  offsetMs: number;
  request<T = Message>(type: string, body?: Message, timeoutMs?: number): Promise<T>;
  /** Asks the child to close; SIGKILL after `graceMs`. Resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
}

const children = new Set<ChildProcess>();
let hooked = false;
let transpileHook: string | null = null;

function killOnExit(): void {
  if (hooked) return;
  hooked = true;
  process.once('exit', () => {
    for (const child of children) child.kill('SIGKILL');
    if (transpileHook) rmSync(transpileHook, { force: true });
  });
}

/**
 * A require hook that transpiles .ts files one at a time with TypeScript's transpileModule (what
 * ts-node --transpile-only does), written to a temporary file. Not ts-node itself: ts-node loads
 * Node's `domain` module, which makes every EventEmitter construction and emit in the process
 * slower — the measured servers would pay for the bench's tooling.
 */
function transpileHookFile(): string {
  if (transpileHook) return transpileHook;
  const file = join(tmpdir(), `latency-bench-hook-${process.pid}.js`);
  const typescript = JSON.stringify(require.resolve('typescript'));
  writeFileSync(
    file,
    `const ts = require(${typescript});
const fs = require('fs');
const compilerOptions = {
  module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true,
  experimentalDecorators: true, emitDecoratorMetadata: true,
};
require.extensions['.ts'] = function (module, filename) {
  const { outputText } = ts.transpileModule(fs.readFileSync(filename, 'utf8'), { compilerOptions, fileName: filename });
  module._compile(outputText, filename);
};
`,
  );
  transpileHook = file;
  return file;
}

/** Starts `file` as a child process and resolves once it reported ready. */
export async function forkTs(
  name: string,
  file: string,
  env: Record<string, string> = {},
  readyTimeoutMs = 60_000,
): Promise<IpcChild> {
  killOnExit();
  const child = fork(file, [], {
    execArgv: [
      '-r',
      transpileHookFile(),
      // BENCH_LATENCY_PROFILE=polling-app: a V8 CPU profile of that child in /tmp/latency-prof.
      ...(process.env.BENCH_LATENCY_PROFILE === name
        ? ['--cpu-prof', '--cpu-prof-dir=/tmp/latency-prof']
        : []),
    ],
    env: { ...process.env, ...env },
    serialization: 'advanced', // typed arrays travel as binary, not JSON
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  children.add(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = `${stderr}${chunk.toString()}`.slice(-4000);
    if (process.env.BENCH_CHILD_LOGS) process.stderr.write(`[${name}] ${chunk.toString()}`);
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      children.delete(child);
      resolve();
    });
  });
  const pending = new Map<number, { resolve(m: Message): void; reject(e: Error): void }>();
  let nextId = 1;
  const failAll = (why: string) => {
    for (const p of pending.values()) p.reject(new Error(`${name}: ${why}\n${stderr}`));
    pending.clear();
  };
  child.once('exit', (code, signal) => failAll(`exited (${code ?? signal})`));

  const info = await new Promise<Message>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name}: not ready within ${readyTimeoutMs} ms\n${stderr}`));
    }, readyTimeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name}: exited (${code ?? signal}) before it was ready\n${stderr}`));
    });
    child.on('message', (m: Message) => {
      if (m.ready) {
        clearTimeout(timer);
        resolve(m.info as Message);
        return;
      }
      const p = pending.get(m.id as number);
      if (!p) return;
      pending.delete(m.id as number);
      if (m.ok) p.resolve(m.result as Message);
      else p.reject(new Error(`${name}: ${String(m.error)}`));
    });
  });

  const self: IpcChild = {
    name,
    process: child,
    info,
    offsetMs: 0,
    request<T>(type: string, body: Message = {}, timeoutMs = 60_000): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`${name}: no answer to ${type} within ${timeoutMs} ms\n${stderr}`));
        }, timeoutMs);
        pending.set(id, {
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        child.send({ ...body, id, type });
      });
    },
    async stop(graceMs = 5000): Promise<void> {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      self.request('close', {}, graceMs).catch(() => undefined);
      await exited;
      clearTimeout(timer);
    },
  };
  return self;
}

/**
 * Estimates the child's clock offset the NTP way: of `samples` round trips, the one with the
 * shortest round trip gives offset = child time − midpoint of send and receive.
 */
export async function calibrate(child: IpcChild, samples = 30): Promise<{ rttMs: number }> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < samples; i++) {
    const sent = clock();
    const { now } = await child.request<{ now: number }>('clock');
    const received = clock();
    if (received - sent < best.rtt) {
      best = { rtt: received - sent, offset: now - (sent + received) / 2 };
    }
  }
  child.offsetMs = best.offset;
  return { rttMs: best.rtt };
}

/** The child side: answers requests with `handlers`, plus `clock`; `close` runs `onClose` and exits. */
export function serveIpc(
  handlers: Record<string, (message: Message) => unknown>,
  onClose: () => Promise<void> = async () => undefined,
): void {
  const all: Record<string, (message: Message) => unknown> = {
    clock: () => ({ now: clock() }),
    close: async () => {
      await onClose();
      setImmediate(() => process.exit(0));
      return {};
    },
    ...handlers,
  };
  process.on('message', (m: Message) => {
    void (async () => {
      try {
        const handler = all[m.type as string];
        if (!handler) throw new Error(`unknown request ${String(m.type)}`);
        process.send!({ id: m.id, ok: true, result: await handler(m) });
      } catch (error) {
        process.send!({ id: m.id, ok: false, error: (error as Error).stack ?? String(error) });
      }
    })();
  });
  // The bench process went away: do not outlive it.
  process.on('disconnect', () => process.exit(0));
}

/** The child side: tells the parent it is ready. */
export function ready(info: Message = {}): void {
  process.send!({ ready: true, info });
}
