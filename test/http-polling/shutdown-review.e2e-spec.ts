import { Body, Controller, Get, Module, Post, type INestApplication } from '@nestjs/common';
import type { Server } from 'node:http';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ChangeReader, PollingModule } from '../../src';
import { ShutdownConnections } from '../../src/http-polling/shutdown-connections.service';
import { selfSignedCertificate } from '../host-apps/self-signed';
import { createPlatformApp } from '../support/http-platform';
import { createItemsTable, itemsOptions } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

/*
 * Review of the shutdown's closing of silent connections: HTTPS apps, uploads under way, and the
 * bookkeeping of connections when the app never stops.
 */

const SHUTDOWN_BOUND_MS = 5_000;

@Controller()
class ReviewController {
  @Get('hello')
  hello() {
    return { hello: 'world' };
  }

  @Get('slow')
  async slow() {
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    return { slow: 'done' };
  }

  @Post('echo')
  echo(@Body() body: unknown) {
    return { echo: body };
  }
}

let db: TestDatabase;
let app: INestApplication | null = null;
const sockets: Socket[] = [];
const tls = selfSignedCertificate();

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
});

afterEach(async () => {
  sockets.splice(0).forEach((socket) => socket.destroy());
  if (app) {
    (app.getHttpServer() as Server).closeAllConnections();
    await app.close();
  }
  app = null;
});

afterAll(async () => {
  await db?.drop();
});

async function start(https: boolean): Promise<INestApplication> {
  @Module({ imports: [PollingModule.forRoot(itemsOptions(db))], controllers: [ReviewController] })
  class ReviewModule {}
  const started = await createPlatformApp(ReviewModule, {
    logger: process.env.TEST_LOGS ? undefined : ['error'],
    ...(https ? { httpsOptions: tls } : {}),
  });
  await started.listen(0, '127.0.0.1');
  await started.get(ChangeReader).whenLive();
  app = started;
  return started;
}

function port(): number {
  return ((app!.getHttpServer() as Server).address() as { port: number }).port;
}

/** How long the app took to close, or 'still open' after the bound plus a margin. */
async function timeToClose(): Promise<number | string> {
  const started = Date.now();
  const done = app!.close().then(() => Date.now() - started);
  app = null;
  const late = new Promise<string>((resolve) =>
    setTimeout(() => resolve('still open'), SHUTDOWN_BOUND_MS + 3_000).unref(),
  );
  return Promise.race([done, late]);
}

function track<T extends Socket>(socket: T): T {
  sockets.push(socket);
  socket.on('error', () => undefined);
  return socket;
}

/** A TLS connection to the app (its self-signed certificate accepted), once connected. */
function openTls(): Promise<Socket> {
  return new Promise((resolve) => {
    const socket = track(
      tlsConnect({ port: port(), host: '127.0.0.1', rejectUnauthorized: false }, () =>
        resolve(socket),
      ),
    );
  });
}

function collect(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.once('close', () => resolve(text));
  });
}

describe('HTTPS app', () => {
  it('closes within the bound with a TCP connection that never started the TLS handshake', async () => {
    await start(true);
    await new Promise<void>((resolve) => track(tcpConnect(port(), '127.0.0.1', resolve)));
    expect(await timeToClose()).toBeLessThan(SHUTDOWN_BOUND_MS);
  });

  it('closes within the bound with a TLS connection that never sent a request (preconnect)', async () => {
    await start(true);
    await openTls();
    expect(await timeToClose()).toBeLessThan(SHUTDOWN_BOUND_MS);
  });

  it('answers a request sent promptly on a TLS connection opened before the shutdown', async () => {
    await start(true);
    const socket = await openTls();
    const answer = collect(socket);
    const closing = timeToClose();
    await new Promise((resolve) => setTimeout(resolve, 300));
    socket.write('GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    expect(await closing).toBeLessThan(SHUTDOWN_BOUND_MS);
    expect(await answer).toMatch(/^HTTP\/1\.1 (200|503) /);
  });

  it('answers in full a TLS request still being worked on for several checks, its client silent', async () => {
    await start(true);
    const socket = await openTls();
    const answer = collect(socket);
    socket.write('GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const took = await timeToClose();
    expect(await answer).toMatch(/^HTTP\/1\.1 200 [\s\S]*"slow":"done"/);
    expect(took).toBeLessThan(SHUTDOWN_BOUND_MS);
  });

  it('forgets every TLS connection once it closed, and the TCP one under it', async () => {
    const started = await start(true);
    for (let i = 0; i < 200; i++) {
      const socket = await openTls();
      const answer = collect(socket);
      socket.write('GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      await answer;
    }
    // And some that never finish their handshake.
    for (let i = 0; i < 50; i++) {
      await new Promise<void>((resolve) => {
        const s = track(tcpConnect(port(), '127.0.0.1', () => (s.destroy(), resolve())));
      });
    }
    sockets.splice(0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const service = started.get(ShutdownConnections) as unknown as {
      connections: Map<unknown, number>;
    };
    expect(service.connections.size).toBe(0);
  });
});

describe('HTTP app', () => {
  it('answers an upload under way at the shutdown that keeps progressing', async () => {
    await start(false);
    const body = JSON.stringify({ text: 'a slow but steady upload' });
    const socket = await new Promise<Socket>((resolve) => {
      const s = track(tcpConnect(port(), '127.0.0.1', () => resolve(s)));
    });
    const answer = collect(socket);
    socket.write(
      'POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
        `Content-Length: ${body.length}\r\n\r\n`,
    );
    let sent = 0;
    const drip = setInterval(() => {
      if (socket.destroyed || sent >= body.length) return clearInterval(drip);
      socket.write(body.slice(sent, sent + 4));
      sent += 4;
    }, 200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const took = await timeToClose();
    clearInterval(drip);
    expect(await answer).toMatch(/^HTTP\/1\.1 201 [\s\S]*a slow but steady upload/);
    expect(took).toBeLessThan(SHUTDOWN_BOUND_MS);
  });

  it('closes within the bound with a client that trickles the headers of its request', async () => {
    await start(false);
    const socket = await new Promise<Socket>((resolve) => {
      const s = track(tcpConnect(port(), '127.0.0.1', () => resolve(s)));
    });
    // Slowloris: the request never completes, but a byte arrives before every check.
    socket.write('GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const trickle = setInterval(() => socket.writable && socket.write('a'), 300);
    try {
      expect(await timeToClose()).toBeLessThan(SHUTDOWN_BOUND_MS);
    } finally {
      clearInterval(trickle);
    }
  });

  it('answers in full a request still being worked on for several checks, its client silent', async () => {
    await start(false);
    const socket = await new Promise<Socket>((resolve) => {
      const s = track(tcpConnect(port(), '127.0.0.1', () => resolve(s)));
    });
    const answer = collect(socket);
    socket.write('GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const took = await timeToClose();
    expect(await answer).toMatch(/^HTTP\/1\.1 200 [\s\S]*"slow":"done"/);
    expect(took).toBeLessThan(SHUTDOWN_BOUND_MS);
  });

  it('closes within the bound with an upgraded connection whose client keeps sending', async () => {
    const started = await start(false);
    (started.getHttpServer() as Server).on('upgrade', (_req, socket: Socket) => {
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n',
      );
      socket.on('data', () => undefined);
      socket.on('error', () => undefined);
    });
    const socket = await new Promise<Socket>((resolve) => {
      const s = track(tcpConnect(port(), '127.0.0.1', () => resolve(s)));
    });
    const switched = new Promise((resolve) => socket.once('data', resolve));
    socket.write(
      'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n',
    );
    await switched;
    // A client's pings, as a WebSocket's would be: bytes before every check, never a request.
    const pings = setInterval(() => socket.writable && socket.write('ping'), 300);
    try {
      expect(await timeToClose()).toBeLessThan(SHUTDOWN_BOUND_MS);
    } finally {
      clearInterval(pings);
    }
  });

  it('forgets every connection once it closed (no growth while the app runs)', async () => {
    const started = await start(false);
    for (let i = 0; i < 1000; i++) {
      const socket = await new Promise<Socket>((resolve) => {
        const s = track(tcpConnect(port(), '127.0.0.1', () => resolve(s)));
      });
      const answer = collect(socket);
      socket.write('GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      await answer;
    }
    sockets.splice(0);
    const service = started.get(ShutdownConnections) as unknown as {
      connections: Map<unknown, number>;
      inFlight: Set<unknown>;
    };
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(service.connections.size).toBe(0);
    expect(service.inFlight.size).toBe(0);
  });
});
