import { Controller, Get } from '@nestjs/common';
import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { startApp, type Started } from '../host-apps/feed-app';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

/*
 * Connections on which no request is under way when the app stops: a browser's preconnect (a
 * socket opened ahead of any request), a client that sent part of a request and went silent, a
 * connection opened while the app is stopping. Node counts such a connection as busy until its
 * first request is complete, so `server.close()` does not close it, and once the server has
 * stopped listening nothing times it out: the app never finished closing. They must not keep the
 * process running past the shutdown bound (5 s); a client that sends its request promptly on a
 * new connection is still answered.
 */

const SHUTDOWN_BOUND_MS = 5_000;

@Controller()
class HelloController {
  @Get('hello')
  hello() {
    return { hello: 'world' };
  }
}

let db: TestDatabase;
let host: Started | null = null;
const sockets: Socket[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
});

beforeEach(async () => {
  host = await startApp(db, { controllers: [HelloController] });
});

afterEach(async () => {
  sockets.splice(0).forEach((socket) => socket.destroy());
  if (host) await host.close();
  host = null;
});

afterAll(async () => {
  await db?.drop();
});

function port(): number {
  return ((host!.app.getHttpServer() as Server).address() as { port: number }).port;
}

/** A connection that sends `first` (maybe nothing) and then stays silent; resolves when open. */
function openSilent(bytes = ''): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port(), '127.0.0.1', () => {
      if (bytes) socket.write(bytes);
      resolve(socket);
    });
    sockets.push(socket);
    socket.on('error', () => undefined);
    socket.once('connect', () => socket.off('error', reject));
    socket.once('error', reject);
  });
}

/** How long the app took to close, or 'still open' after the bound plus a margin. */
async function timeToClose(closing: Promise<void>, started: number): Promise<number | string> {
  host = null;
  const late = new Promise<string>((resolve) =>
    setTimeout(() => resolve('still open'), SHUTDOWN_BOUND_MS + 3_000).unref(),
  );
  return Promise.race([closing.then(() => Date.now() - started), late]);
}

it('closes a connection opened ahead of any request (a preconnect) within the bound', async () => {
  const preconnect = await openSilent();
  const closed = new Promise((resolve) => preconnect.once('close', resolve));
  const started = Date.now();
  const took = await timeToClose(host!.app.close(), started);
  expect(took).toBeLessThan(SHUTDOWN_BOUND_MS);
  await closed;
});

it('closes a connection whose client sent part of a request and went silent', async () => {
  await openSilent('GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const started = Date.now();
  expect(await timeToClose(host!.app.close(), started)).toBeLessThan(SHUTDOWN_BOUND_MS);
});

it('closes a silent connection opened while the app is stopping', async () => {
  const started = Date.now();
  const closing = host!.app.close();
  // The listener is still open while the shutdown hooks run.
  await openSilent().catch(() => undefined);
  expect(await timeToClose(closing, started)).toBeLessThan(SHUTDOWN_BOUND_MS);
});

it('answers a request sent promptly on a connection opened before the shutdown', async () => {
  const socket = await openSilent();
  const answer = new Promise<string>((resolve) => {
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.once('close', () => resolve(text));
  });
  const started = Date.now();
  const closing = host!.app.close();
  await new Promise((resolve) => setTimeout(resolve, 300));
  socket.write('GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  expect(await timeToClose(closing, started)).toBeLessThan(SHUTDOWN_BOUND_MS);
  // The route's answer, or the platform's refusal while closing: an answer, not a reset.
  expect(await answer).toMatch(/^HTTP\/1\.1 (200|503) /);
});
