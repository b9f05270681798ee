import { Controller, Sse } from '@nestjs/common';
import { Client } from 'pg';
import { LiveStream, PollContext, type PollingRequest } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { startApp, type Started } from '../host-apps/feed-app';
import { createItemsTable, insertItem } from '../support/polling-app';
import { SseReader } from '../support/sse-reader';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/*
 * Subscribers of one feed at one cursor share a stream group: one wait, one handler run and one
 * encoded event per change. What each member sees must still be its own: a member whose access is
 * revoked gets a 403 error event and ends, whichever member the group waits on, while the others
 * go on with every change once; a member that opens at an older cursor catches up and then follows
 * with the group, again every change once, in commit order.
 */

/** Users allowed to read, by the x-user header (the route's `authorize`). */
const allowed = new Set<string>();
let handlerRuns = 0;

@Controller()
class GroupStreamController {
  @Sse('group/:run/stream')
  @LiveStream({
    feed: 'items',
    partition: 'run',
    keepAliveS: 60,
    authorize: (req: PollingRequest) => allowed.has(String(req.headers['x-user'])),
  })
  stream(@PollContext() poll: PollContext) {
    handlerRuns++;
    return { ids: poll.changedIds, cursor: poll.cursor };
  }
}

const idsOf = (reader: SseReader) =>
  reader.events
    .filter((e) => e.event === undefined)
    .flatMap((e) => (JSON.parse(e.data!) as { ids: string[] }).ids);

let db: TestDatabase;
let writer: Client;
let host: Started;
const readers: SseReader[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
  host = await startApp(db, { controllers: [GroupStreamController] }, undefined, {
    http: { maxHeldPerClient: 100 },
    // Every subscriber may share: the group is what is under test.
    aggregator: { scope: () => 'everyone' },
  });
});

afterEach(() => {
  readers.splice(0).forEach((reader) => reader.close());
  allowed.clear();
});

afterAll(async () => {
  await host?.close();
  await writer?.end();
  await db?.drop();
});

async function open(run: number, user: string, lastEventId?: string): Promise<SseReader> {
  const reader = await SseReader.open(`${host.url}/group/${run}/stream`, {
    'x-user': user,
    ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}),
  });
  readers.push(reader);
  return reader;
}

const held = () => host.app.get(HeldRequests).size;

it.each(['first', 'last'])(
  'ends only the revoked member (opened %s) with a 403 event; the others get every change once',
  async (which) => {
    const run = which === 'first' ? 1 : 2;
    ['a', 'b', 'c'].forEach((user) => allowed.add(user));
    const order = which === 'first' ? ['b', 'a', 'c'] : ['a', 'c', 'b'];
    const streams = new Map<string, SseReader>();
    for (const user of order) {
      streams.set(user, await open(run, user));
      // One at a time: the first opened is the member the group waits on.
      await streams.get(user)!.event(1);
    }
    await waitFor(() => held() === 3, { message: 'three streams open' });
    const ids = [await insertItem(writer, run)];
    for (const reader of streams.values()) await reader.until((r) => idsOf(r).length === 1);

    allowed.delete('b');
    const runsBefore = handlerRuns;
    ids.push(await insertItem(writer, run));
    const revoked = streams.get('b')!;
    await revoked.until((r) => r.ended, 5000);
    const failure = revoked.events.at(-1)!;
    expect(failure.event).toBe('error');
    expect(JSON.parse(failure.data!)).toMatchObject({ statusCode: 403 });
    expect(idsOf(revoked)).toEqual(ids.slice(0, 1));

    ids.push(await insertItem(writer, run));
    for (const user of ['a', 'c']) {
      const reader = streams.get(user)!;
      await reader.until((r) => idsOf(r).length >= ids.length);
      expect([user, idsOf(reader)]).toEqual([user, ids]);
    }
    // Still one group: one handler run per change for both members (changes may coalesce).
    expect(handlerRuns - runsBefore).toBeLessThanOrEqual(2);
    await waitFor(() => held() === 2, { message: 'the revoked stream freed its slot' });
  },
);

it('lets a member open at an older cursor catch up, then follow with the group, each change once', async () => {
  allowed.add('a').add('d');
  const a = await open(3, 'a');
  const head = await a.event(1);
  const ids = [await insertItem(writer, 3), await insertItem(writer, 3)];
  await a.until((r) => idsOf(r).length === 2);

  // From the head before both changes: behind the group, which stands after them.
  const d = await open(3, 'd', head.id);
  await d.until((r) => idsOf(r).length === 2);
  await waitFor(() => held() === 2, { message: 'both streams open' });
  // Caught up, it joined the group: one handler run per change serves both.
  const runsBefore = handlerRuns;
  for (let i = 0; i < 3; i++) {
    ids.push(await insertItem(writer, 3));
    await a.until((r) => idsOf(r).length === ids.length);
    await d.until((r) => idsOf(r).length === ids.length);
  }
  expect(handlerRuns - runsBefore).toBe(3);
  expect(idsOf(a)).toEqual(ids);
  expect(idsOf(d)).toEqual(ids);
});
