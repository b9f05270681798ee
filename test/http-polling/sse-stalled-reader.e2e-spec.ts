import { Controller, Get, Sse } from '@nestjs/common';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { Client } from 'pg';
import { LiveStream, PollContext } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { startApp, type Started } from '../host-apps/feed-app';
import { createItemsTable, insertItem } from '../support/polling-app';
import { openStalled } from '../support/stalled-socket';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/*
 * A client that stopped reading an SSE stream (a frozen tab, a proxy that stalled): its socket
 * buffers fill and the stream waits for them to drain. On shutdown such a stream must not keep
 * the server, and so the process, running: it is ended, or its connection destroyed, within the
 * shutdown bound (the process exits within 5 s). Only such a connection: the app's own request
 * that is still being worked on, or whose client reads slowly, is answered in full.
 */

const EVENT_BYTES = 4 * 1024 * 1024;
const SLOW_MS = 3500;

@Controller()
class BigStreamController {
  @Sse('big/:run/stream')
  @LiveStream({ feed: 'items', partition: 'run' })
  stream(@PollContext() poll: PollContext) {
    return { cursor: poll.cursor, pad: 'x'.repeat(EVENT_BYTES) };
  }

  /** An app route of its own that takes a while (a report, an export). */
  @Get('slow-report')
  async report() {
    await new Promise((resolve) => setTimeout(resolve, SLOW_MS));
    return { done: true };
  }
}

let db: TestDatabase;
let writer: Client;
let host: Started | null = null;
let stalled: Socket | null = null;

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
});

afterAll(async () => {
  stalled?.destroy();
  if (host) await host.close();
  await writer?.end();
  await db?.drop();
});

it('ends a stream whose client stopped reading within the shutdown bound', async () => {
  host = await startApp(db, { controllers: [BigStreamController] });
  const { app } = host;
  const held = app.get(HeldRequests);
  const { port } = (app.getHttpServer() as Server).address() as { port: number };
  stalled = await openStalled(port, '/big/1/stream', 'Accept: text/event-stream\r\n');
  await waitFor(() => held.size === 1, { message: 'the stream opens' });
  // Events of 4 MB each: the socket buffers on both sides fill, and the stream waits to drain.
  for (let i = 0; i < 4; i++) {
    await insertItem(writer, 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  expect(stalled.readableLength + stalled.bytesRead).toBeLessThan(4 * EVENT_BYTES);

  const started = Date.now();
  const closed = app.close().then(() => Date.now() - started);
  const bound = new Promise<string>((resolve) => setTimeout(() => resolve('still open'), 8_000));
  const outcome = await Promise.race([closed, bound]);
  host = null;
  expect(outcome).not.toBe('still open');
  expect(outcome as number).toBeLessThan(5_000);
  await waitFor(() => held.size === 0, { message: 'the stream released its held slot' });
}, 30_000);

it('still answers an app request that is being worked on when the shutdown starts', async () => {
  host = await startApp(db, { controllers: [BigStreamController] });
  const { app, url } = host;
  const report = fetch(`${url}/slow-report`).then(
    async (res) => ({ status: res.status, body: (await res.json()) as unknown }),
    (error: Error) => ({ status: 0, body: error.message }),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  const closed = app.close();
  host = null;
  expect(await report).toEqual({ status: 200, body: { done: true } });
  await closed;
});
