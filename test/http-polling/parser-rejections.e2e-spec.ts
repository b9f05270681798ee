import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { startItemsFixture, type ItemsFixture } from '../fixtures/items-app';

/*
 * Requests Node's parser rejects (installJsonHttpErrors) are answered on a connection that closes
 * cleanly: the client may go on sending the rest of its request and still reads the answer.
 */

interface RawConnection {
  socket: Socket;
  /** Everything received so far. */
  text(): string;
  /** Errors the client's socket saw (a reset: ECONNRESET, EPIPE). */
  errors: string[];
  closed: Promise<number>;
}

/** A raw connection that keeps its sending side open after the server's FIN, like an upload. */
function open(port: number): RawConnection {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const started = performance.now();
  let text = '';
  const errors: string[] = [];
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
  const closed = new Promise<number>((resolve) =>
    socket.once('close', () => resolve(performance.now() - started)),
  );
  return { socket, text: () => text, errors, closed };
}

/** Resolves once a whole answer (headers and Content-Length body) has arrived. */
async function wholeAnswer(connection: RawConnection): Promise<{ status: number; body: unknown }> {
  for (;;) {
    const text = connection.text();
    const end = text.indexOf('\r\n\r\n');
    const length = /\r\ncontent-length: (\d+)/i.exec(text);
    if (end >= 0 && length && text.length >= end + 4 + Number(length[1])) {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)![1]);
      return { status, body: JSON.parse(text.slice(end + 4)) };
    }
    await new Promise((resolve) => connection.socket.once('data', resolve));
  }
}

const HEAD = 'GET /runs/1/changes HTTP/1.1\r\nHost: x\r\nCookie: ';

describe('requests the HTTP parser rejects', () => {
  let fixture: ItemsFixture;
  let port: number;

  beforeAll(async () => {
    fixture = await startItemsFixture();
    port = Number(new URL(fixture.items.url).port);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('a client still sending after the 431 finishes its request, reads the answer, no reset', async () => {
    const connection = open(port);
    connection.socket.write(HEAD + 'd'.repeat(64 * 1024));
    const answer = await wholeAnswer(connection);
    expect(answer).toEqual({
      status: 431,
      body: {
        statusCode: 431,
        error: 'Request Header Fields Too Large',
        message: expect.any(String),
      },
    });
    // The rest of the oversized request arrives after the answer (a client still uploading).
    for (let i = 0; i < 16; i++) connection.socket.write('d'.repeat(64 * 1024));
    connection.socket.end('\r\n\r\n');
    await connection.closed;
    expect(connection.errors).toEqual([]);
  });

  it('fetch with a 1 MB URL gets the 431 in JSON, every time', async () => {
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${fixture.items.url}/runs/1/changes?since=${'a'.repeat(1 << 20)}`);
      expect(res.status).toBe(431);
      expect(await res.json()).toMatchObject({ statusCode: 431 });
    }
  });

  it('an answered client that goes on sending and never ends is cut after headersTimeout', async () => {
    const server = fixture.items.app.getHttpServer() as Server;
    const headersTimeout = server.headersTimeout;
    server.headersTimeout = 1000;
    try {
      const connection = open(port);
      connection.socket.write(HEAD + 'd'.repeat(20 * 1024));
      expect((await wholeAnswer(connection)).status).toBe(431);
      // A byte every 100 ms: once the server has closed, the next one is answered by a reset.
      const drip = setInterval(() => connection.socket.write('d'), 100);
      const closedAfterMs = await connection.closed.finally(() => clearInterval(drip));
      expect(connection.errors.length).toBeGreaterThan(0);
      expect(closedAfterMs).toBeGreaterThanOrEqual(900);
      expect(closedAfterMs).toBeLessThan(5000);
    } finally {
      server.headersTimeout = headersTimeout;
    }
  });
});
