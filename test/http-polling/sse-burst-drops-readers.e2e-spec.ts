import { Controller, Sse } from '@nestjs/common';
import { Client } from 'pg';
import { LiveStream, PollContext } from '../../src';
import {
  PollingEvents,
  type PollingEvent,
} from '../../src/http-polling/watch/polling-events.service';
import { startApp, type Started } from '../host-apps/feed-app';
import { testPlatform } from '../support/http-platform';
import { createItemsTable } from '../support/polling-app';
import { SseReader } from '../support/sse-reader';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

/*
 * Reading clients are never dropped (found in the review of issue 16; the old behaviour below). One transaction that writes many rows is one
 * notice; the group then delivers them batch after batch (StreamGroup.deliver returns the next
 * check while batches are incomplete) without waiting for any socket to drain. With the default
 * in-memory index nothing in that loop yields to the event loop, so every event of the burst is
 * queued before a byte is sent and every live subscriber, however fast it reads, is dropped.
 */

const PAD = 48 * 1024;
const ROWS = 40;

@Controller()
class PaddedController {
  @Sse('padded/:run/stream')
  @LiveStream({ feed: 'items', partition: 'run', keepAliveS: 60 })
  stream(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds, pad: 'x'.repeat(PAD) };
  }

  /** What a real handler sends: each changed row (~300 bytes), up to 1,000 (the default) a batch. */
  @Sse('rows/:run/stream')
  @LiveStream({ feed: 'items', partition: 'run', keepAliveS: 60 })
  rows(@PollContext() poll: PollContext) {
    return {
      ids: poll.changedIds,
      rows: poll.changedIds.map((id) => ({ id, body: 'r'.repeat(300) })),
    };
  }
}

const idsOf = (data: string | undefined) => (JSON.parse(data!) as { ids: string[] }).ids;

let db: TestDatabase;
let writer: Client;
let host: Started;
const events: PollingEvent[] = [];
/** An app with every default: maxChangesPerResponse 1,000, maxBufferedBytes 1 MiB, no scope. */
let defaults: Started;
const defaultEvents: PollingEvent[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
  host = await startApp(db, { controllers: [PaddedController] }, undefined, {
    // Events of one change each, ~48 KB (~1.9 MiB in all): each well under the default limit of 1 MiB.
    http: { maxChangesPerResponse: 1, maxHeldPerClient: 100 },
    aggregator: { scope: () => 'everyone' },
  });
  host.app.get(PollingEvents).events$.subscribe((e) => events.push(e));
  defaults = await startApp(db, { controllers: [PaddedController] }, undefined, {
    http: { maxHeldPerClient: 100 },
  });
  defaults.app.get(PollingEvents).events$.subscribe((e) => defaultEvents.push(e));
});

afterAll(async () => {
  await host?.close();
  await defaults?.close();
  await writer?.end();
  await db?.drop();
});

it(`subscribers that read are not dropped when one transaction writes many rows (${testPlatform()})`, async () => {
  const RUN = 1;
  const readers = await Promise.all(
    [1, 2, 3].map(() => SseReader.open(`${host.url}/padded/${RUN}/stream`)),
  );
  try {
    await Promise.all(readers.map((r) => r.event(1, 15_000))); // the head
    const { rows } = await writer.query<{ id: string }>(
      'INSERT INTO items (run, body) SELECT $1, $2 FROM generate_series(1, $3) RETURNING id',
      [RUN, 'item', ROWS],
    );
    const ids = rows.map((r) => r.id);
    const received = (r: SseReader) => r.events.slice(1).flatMap((e) => idsOf(e.data));
    await Promise.all(
      readers.map((r) =>
        r.until((x) => x.ended || received(x).length >= ROWS, 40_000).catch(() => undefined),
      ),
    );
    const outcome = readers.map((r) => ({ received: received(r).length, ended: r.ended }));
    expect({
      drops: events.filter((e) => e.type === 'dropped').length,
      outcome,
    }).toEqual({
      drops: 0,
      outcome: readers.map(() => ({ received: ROWS, ended: false })),
    });
    for (const r of readers) expect(received(r)).toEqual(ids);
  } finally {
    for (const r of readers) r.close();
  }
});

it(`a subscriber that reads is not dropped by a bulk write of 5,000 rows, with every default (${testPlatform()})`, async () => {
  const RUN = 2;
  const COUNT = 5000;
  const reader = await SseReader.open(`${defaults.url}/rows/${RUN}/stream`);
  try {
    await reader.event(1, 15_000); // the head
    await writer.query('INSERT INTO items (run, body) SELECT $1, $2 FROM generate_series(1, $3)', [
      RUN,
      'item',
      COUNT,
    ]);
    const received = () => reader.events.slice(1).flatMap((e) => idsOf(e.data));
    await reader.until((x) => x.ended || received().length >= COUNT, 30_000).catch(() => undefined);
    expect({
      drops: defaultEvents.filter((e) => e.type === 'dropped').length,
      received: received().length,
      ended: reader.ended,
    }).toEqual({ drops: 0, received: COUNT, ended: false });
  } finally {
    reader.close();
  }
});
