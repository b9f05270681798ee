import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { emptySamples, type PhaseSamples, type SamplesReport } from './abuse-other-client';
import { percentile, Tally } from './abuse-stats';

const ROOT = join(__dirname, '..', '..', '..');
const MAIN = join(__dirname, 'abuse-other-client-main.ts');

export interface OtherClientCommand {
  id: number;
  do: 'start' | 'stop' | 'enter' | 'report';
  phase?: string;
}

export interface OtherClientReply {
  id: number;
  report?: SamplesReport;
  error?: string;
}

/** The other client (abuse-other-client.ts) in a process of its own, driven over IPC. */
export class OtherClientProcess {
  private nextId = 0;
  private readonly pending = new Map<number, (reply: OtherClientReply) => void>();
  private samplesByPhase = new Map<string, PhaseSamples>();
  private exited = false;

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (reply: OtherClientReply) => {
      this.pending.get(reply.id)?.(reply);
      this.pending.delete(reply.id);
    });
    child.once('exit', () => {
      this.exited = true;
      for (const resolve of this.pending.values()) resolve({ id: -1, error: 'the client exited' });
      this.pending.clear();
    });
  }

  /** Forks the client and starts its loop (it has taken its head cursor when this resolves). */
  static async start(url: string, apiKey: string, channel: string): Promise<OtherClientProcess> {
    const child = fork(MAIN, [url, apiKey, channel], {
      cwd: ROOT,
      execArgv: ['-r', 'ts-node/register/transpile-only'],
      env: { ...process.env, TS_NODE_PROJECT: join(ROOT, 'tsconfig.json') },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const client = new OtherClientProcess(child);
    await client.send({ do: 'start' });
    return client;
  }

  /** Files the following samples under `phase`. */
  enter(phase: string): Promise<void> {
    return this.send({ do: 'enter', phase }).then(() => undefined);
  }

  /** Ends the loop after its current iteration: nothing of this client is held then. */
  pause(): Promise<void> {
    return this.send({ do: 'stop' }).then(() => undefined);
  }

  resume(): Promise<void> {
    return this.send({ do: 'start' }).then(() => undefined);
  }

  /** Fetches every phase's samples so far; `samples()` and `p99()` read them. */
  async refresh(): Promise<void> {
    const { report } = await this.send({ do: 'report' });
    this.samplesByPhase = new Map(
      Object.entries(report!).map(([phase, s]) => [
        phase,
        { ...s, statuses: Tally.from(s.statuses) },
      ]),
    );
  }

  samples(phase: string): PhaseSamples {
    return this.samplesByPhase.get(phase) ?? emptySamples();
  }

  /** The phases with samples, in the order they began. */
  phases(): string[] {
    return [...this.samplesByPhase.keys()];
  }

  p99(phase: string): number {
    return percentile(this.samples(phase).latencies, 99);
  }

  /** Ends the process (its loop stops with it). */
  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    // The client exits when its IPC channel closes (abuse-other-client-main.ts).
    if (this.child.connected) this.child.disconnect();
    else this.child.kill();
    await exited;
  }

  private send(command: Omit<OtherClientCommand, 'id'>): Promise<OtherClientReply> {
    if (this.exited) return Promise.reject(new Error('the other client has exited'));
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (reply) =>
        reply.error ? reject(new Error(`other client: ${reply.error}`)) : resolve(reply),
      );
      this.child.send({ id, ...command });
    });
  }
}
