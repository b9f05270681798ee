import { createServer, request, type Server } from 'node:http';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

/**
 * An HTTP proxy that buffers every answer until it is complete — like nginx with
 * `proxy_buffering on` in front of an event stream: an ordinary answer passes (late but whole),
 * an SSE stream never does. A client that goes away ends the request upstream too.
 */
export class BufferingProxy {
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  /** Requests the proxy has received, by path. */
  readonly paths: string[] = [];

  static async start(targetPort: number): Promise<BufferingProxy> {
    let proxy: BufferingProxy | null = null;
    const server = createServer((req, res) => {
      proxy?.paths.push(req.url ?? '');
      const upstream = request(
        {
          host: '127.0.0.1',
          port: targetPort,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, connection: 'close' },
        },
        (answer) => {
          const chunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => chunks.push(chunk));
          answer.on('end', () => {
            const headers = Object.fromEntries(
              Object.entries(answer.headers).filter(([name]) => !HOP_BY_HOP.has(name)),
            );
            res.writeHead(answer.statusCode ?? 502, headers);
            res.end(Buffer.concat(chunks));
          });
          answer.on('error', () => res.destroy());
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
      res.on('close', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    proxy = new BufferingProxy(server, `http://127.0.0.1:${port}`);
    return proxy;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
