import { All, Controller } from '@nestjs/common';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { Client } from 'pg';
import { DurableStream, PollContext } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { startApp, type Started } from '../host-apps/feed-app';
import { createItemsTable, insertItem } from '../support/polling-app';
import { openStalled } from '../support/stalled-socket';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/*
 * A `live=sse` reader of a Durable Stream that stopped reading (a frozen tab, a stalled proxy)
 * while its feed keeps changing. Its socket buffers fill; the stream must then stop reading
 * changes and running the handler for it (the next read covers everything meanwhile), as
 * @LiveStream does, instead of queueing every change's rows in memory for a client that takes
 * none of them.
 */

const ROW_BYTES = 1024 * 1024;
const CHANGES = 30;
const SSE_CLOSE_S = 4;
const runs = { count: 0 };

@Controller()
class BigRowsController {
  @All('durable/:run')
  @DurableStream({ feed: 'items', partition: 'run', sseCloseS: SSE_CLOSE_S })
  rows(@PollContext() poll: PollContext) {
    runs.count++;
    return poll.changedIds.map((id) => ({ id, pad: 'x'.repeat(ROW_BYTES) }));
  }
}

let db: TestDatabase;
let writer: Client;
let host: Started;
let stalled: Socket | null = null;

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
  host = await startApp(db, { controllers: [BigRowsController] });
}, 30_000);

afterAll(async () => {
  stalled?.destroy();
  await host?.close();
  await writer?.end();
  await db?.drop();
});

it('stops running the handler for a reader whose buffers are full, and ends on time', async () => {
  const held = host.app.get(HeldRequests);
  const { port } = (host.app.getHttpServer() as Server).address() as { port: number };
  stalled = await openStalled(port, '/durable/1?offset=now&live=sse');
  await waitFor(() => held.size === 1, { message: 'the stream opens' });
  const before = runs.count;
  const external = process.memoryUsage().arrayBuffers;
  for (let i = 0; i < CHANGES; i++) {
    await insertItem(writer, 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  const ran = runs.count - before;
  const grownMb = (process.memoryUsage().arrayBuffers - external) / 2 ** 20;
  // The socket takes a few events (kernel buffers); after that, nothing more is read or queued.
  console.log(`handler runs for ${CHANGES} changes: ${ran}; memory grown ${grownMb.toFixed(1)} MB`);
  expect(ran).toBeLessThanOrEqual(10);
  expect(grownMb).toBeLessThan(16);
  // Like any SSE response of the stream, it ends after sseCloseS, stalled or not: its slot is free.
  await waitFor(() => held.size === 0, {
    timeoutMs: SSE_CLOSE_S * 1000 + 2000,
    message: 'the stalled session still holds its slot',
  });
});
