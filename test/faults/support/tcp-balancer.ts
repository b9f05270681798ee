import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A layer-4 round-robin load balancer in front of the app instances, like an nginx `stream` block:
 * each client connection goes to the next upstream that accepts it; when an instance dies, its
 * connections break and the clients' reconnects land on the others.
 */
export class TcpBalancer {
  private next = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly upstreamPorts: number[],
  ) {}

  static async start(upstreamPorts: number[]): Promise<TcpBalancer> {
    let balancer: TcpBalancer | null = null;
    const server = createServer((client) => balancer!.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    balancer = new TcpBalancer(server, (server.address() as { port: number }).port, upstreamPorts);
    return balancer;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private accept(client: Socket): void {
    client.pause();
    this.track(client);
    this.connectUpstream(client, this.upstreamPorts.length);
  }

  /** Tries the upstreams in turn; a refused connect moves on to the next one. */
  private connectUpstream(client: Socket, triesLeft: number): void {
    if (triesLeft === 0 || client.destroyed) {
      client.destroy();
      return;
    }
    const port = this.upstreamPorts[this.next++ % this.upstreamPorts.length];
    const upstream = connect(port, '127.0.0.1');
    const refused = () => this.connectUpstream(client, triesLeft - 1);
    upstream.once('error', refused);
    upstream.once('connect', () => {
      upstream.removeListener('error', refused);
      this.track(upstream);
      // A reset on one side resets the other; a clean end is passed on by pipe() with its data.
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy()).on('close', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
