import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import Redis from 'ioredis';
import { waitFor } from './wait-for';

/** A free TCP port on loopback, chosen by the OS. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * A throw-away redis-server owned by one fault test, so the test may FLUSHALL, kill and restart it
 * without touching the shared Redis.
 */
export class OwnedRedisServer {
  private process: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  static async start(): Promise<OwnedRedisServer> {
    const server = new OwnedRedisServer(await freePort());
    await server.startProcess();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async flushAll(): Promise<void> {
    const client = new Redis(this.url);
    await client.flushall();
    await client.quit();
  }

  /** SIGKILL, then a fresh empty server on the same port (what a crash and restart look like). */
  async restart(): Promise<void> {
    await this.stop();
    await this.startProcess();
  }

  /** Starts it again after `stop()`, empty, on the same port. */
  async start(): Promise<void> {
    await this.startProcess();
  }

  async stop(): Promise<void> {
    const child = this.process;
    this.process = null;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  private async startProcess(): Promise<void> {
    this.process = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    const probe = new Redis(this.url, { lazyConnect: true, retryStrategy: () => 50 });
    probe.on('error', () => undefined);
    try {
      await waitFor(async () => (await probe.ping().catch(() => null)) === 'PONG', {
        timeoutMs: 5000,
        message: `redis-server did not start on port ${this.port}`,
      });
    } finally {
      probe.disconnect();
    }
  }
}
