import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy for fault tests. `freezeOpenConnections()` makes every current connection
 * half-open: sockets stay open but no byte passes, like a peer that vanished without a FIN.
 * `dropWhenClientSends(text)` drops the connection that sends `text` instead of forwarding it.
 * `latencyMs` delays every chunk in both directions (in order), like a distant peer.
 * `refuse(true)` cuts every connection and drops new ones at once, like a server that went down.
 */
export class TcpProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  private frozen = new Set<Socket>();
  private dropOn: string | null = null;
  private refusing = false;
  latencyMs = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = createServer((client) => {
      if (proxy!.refusing) {
        client.destroy();
        return;
      }
      const upstream = connect(targetPort, targetHost);
      const pair: [Socket, Socket] = [client, upstream];
      proxy!.pairs.add(pair);
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk: Buffer) => {
          const drop = proxy!.dropOn;
          if (from === client && drop !== null && chunk.includes(drop)) {
            client.destroy();
            upstream.destroy();
            return;
          }
          if (proxy!.frozen.has(from)) return;
          // Unref: a chunk still delayed when the test ends must not keep jest running.
          if (proxy!.latencyMs > 0) setTimeout(() => to.write(chunk), proxy!.latencyMs).unref();
          else to.write(chunk);
        });
      forward(client, upstream);
      forward(upstream, client);
      const close = () => {
        // A frozen connection stays open upstream: the server must not learn the client is gone.
        if (proxy!.frozen.has(client)) return;
        proxy!.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new TcpProxy(server, (server.address() as { port: number }).port);
    return proxy;
  }

  get openConnections(): number {
    return this.pairs.size;
  }

  freezeOpenConnections(): void {
    for (const [a, b] of this.pairs) {
      this.frozen.add(a);
      this.frozen.add(b);
    }
  }

  dropWhenClientSends(text: string | null): void {
    this.dropOn = text;
  }

  refuse(refusing: boolean): void {
    this.refusing = refusing;
    if (!refusing) return;
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
  }

  async close(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
