import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../../support/redis-server';

const ROOT = join(__dirname, '..', '..', '..');
const MAIN = join(ROOT, 'dist-example', 'example', 'main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (/\.(spec|e2e-spec)\.ts$/.test(entry.name)) continue; // not part of the build
    const path = join(dir, entry.name);
    const mtime = entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs;
    newest = Math.max(newest, mtime);
  }
  return newest;
}

/**
 * The suite runs the built example (`npm run build` → dist-example). After an edit without a
 * build, dist-example is older than its sources: compile it again rather than test stale code.
 */
export function ensureExampleBuilt(): void {
  const sources = Math.max(newestMtime(join(ROOT, 'src')), newestMtime(join(ROOT, 'example')));
  if (existsSync(MAIN) && statSync(MAIN).mtimeMs >= sources) return;
  execFileSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.example.json'],
    {
      cwd: ROOT,
      stdio: 'inherit',
    },
  );
}

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * One instance of the built example app as its own OS process, on a fixed port so a restart comes
 * back where the load balancer expects it.
 */
export class ExampleProcess {
  private child: ChildProcess | null = null;
  private exited: Promise<ProcessExit> = Promise.resolve({ code: null, signal: null });
  private output = '';

  private constructor(
    readonly name: string,
    readonly port: number,
    private readonly env: Record<string, string>,
  ) {}

  static async start(name: string, env: Record<string, string>): Promise<ExampleProcess> {
    const instance = new ExampleProcess(name, await freePort(), env);
    await instance.start();
    return instance;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines the process printed (for failure messages). */
  get recentOutput(): string {
    return this.output.slice(-4000);
  }

  /** Spawns the process and resolves once it logged that it serves (its reader is live then). */
  async start(timeoutMs = 30_000): Promise<void> {
    // A restart must wait for its own "serving on" line, not find the previous run's.
    this.output = '';
    const child = spawn(process.execPath, [MAIN], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...this.env,
        PORT: String(this.port),
        HOST: '127.0.0.1',
        NODE_ENV: 'test',
        NO_COLOR: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const serving = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        this.output = (this.output + chunk.toString('utf8')).slice(-64_000);
        if (this.output.includes(`serving on http://127.0.0.1:${this.port}`)) resolve();
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      void this.exited.then((exit) =>
        reject(
          new Error(
            `${this.name} exited (${JSON.stringify(exit)}) before serving:\n${this.recentOutput}`,
          ),
        ),
      );
      setTimeout(
        () =>
          reject(
            new Error(`${this.name} did not serve within ${timeoutMs} ms:\n${this.recentOutput}`),
          ),
        timeoutMs,
      ).unref();
    });
    await serving;
  }

  /** Sends a signal; resolves with how the process ended. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<ProcessExit> {
    if (this.running) this.child!.kill(signal);
    const exit = await this.exited;
    this.child = null;
    return exit;
  }

  whenExited(): Promise<ProcessExit> {
    return this.exited;
  }
}
