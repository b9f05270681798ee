import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy whose port outlives the app behind it: `stop()` closes the listener and
 * every connection (clients then get ECONNREFUSED, as from a stopped server), `resume()` listens
 * on the same port again, `retarget()` points it at another app (a restarted one).
 */
export class SwitchableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  private port = 0;

  private constructor(private target: number) {}

  static async start(targetPort: number): Promise<SwitchableProxy> {
    const proxy = new SwitchableProxy(targetPort);
    await proxy.resume();
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  retarget(targetPort: number): void {
    this.target = targetPort;
  }

  /** Drops every open connection (both sides), keeping the listener. */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  async resume(): Promise<void> {
    if (this.server) return;
    const server = createServer((client) => {
      const upstream = connect(this.target, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => {
          this.sockets.delete(socket);
          client.destroy();
          upstream.destroy();
        });
        socket.on('error', () => undefined);
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.dropConnections();
    await closed;
  }
}
