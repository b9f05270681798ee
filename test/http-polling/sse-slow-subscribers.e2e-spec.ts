import { Controller, Sse } from '@nestjs/common';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { Client } from 'pg';
import { LiveStream, PollContext, type PollingModuleOptions } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import {
  PollingEvents,
  type PollingEvent,
} from '../../src/http-polling/watch/polling-events.service';
import { startApp, type Started } from '../host-apps/feed-app';
import { createItemsTable, insertItem } from '../support/polling-app';
import { parsePrometheusText } from '../support/prometheus-text';
import { SseReader } from '../support/sse-reader';
import { openStalled, readToEnd, sseEvents } from '../support/stalled-socket';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/*
 * SSE at scale: the subscribers of one feed that stand at one cursor share one index read, one
 * handler run and one encoded event per change, written to each of them; a subscriber that does
 * not read is dropped once its connection holds more than http.sse.maxBufferedBytes unsent and it
 * takes nothing for a second, and
 * resumes with its Last-Event-ID. The events are large (the kernel's socket buffers fill after a
 * few), so a stalled client makes the server queue bytes within a few changes.
 */

const PAD = 256 * 1024;
/** The encoded event: the padding plus its ids, cursor and framing. */
const FRAME_MAX = PAD + 1024;
const MAX_CHANGES = 60;
let handlerRuns = 0;

@Controller()
class PaddedStreamController {
  @Sse('padded/:run/stream')
  @LiveStream({ feed: 'items', partition: 'run', keepAliveS: 60 })
  stream(@PollContext() poll: PollContext) {
    handlerRuns++;
    return { ids: poll.changedIds, cursor: poll.cursor, pad: 'x'.repeat(PAD) };
  }
}

interface Padded {
  ids: string[];
  cursor: string;
}
const idsOf = (data: string | undefined) => (JSON.parse(data!) as Padded).ids;

let db: TestDatabase;
let writer: Client;

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
});

afterAll(async () => {
  await writer?.end();
  await db?.drop();
});

/** An app whose streams all share one aggregator scope, with the given SSE buffer limit. */
function useApp(maxBufferedBytes: number) {
  const state: {
    host: Started;
    readers: SseReader[];
    sockets: Socket[];
    events: PollingEvent[];
  } = {} as never;
  const options: Partial<PollingModuleOptions> = {
    http: { maxHeldPerClient: 100, sse: { maxBufferedBytes } },
    aggregator: { scope: () => 'everyone' },
    metrics: { enabled: true },
  };
  beforeAll(async () => {
    state.host = await startApp(db, { controllers: [PaddedStreamController] }, undefined, options);
    state.events = [];
    state.host.app.get(PollingEvents).events$.subscribe((event) => state.events.push(event));
  });
  beforeEach(() => {
    state.readers = [];
    state.sockets = [];
  });
  afterEach(() => {
    for (const reader of state.readers) reader.close();
    for (const socket of state.sockets) socket.destroy();
  });
  afterAll(async () => {
    await state.host?.close();
  });
  return state;
}

function port(host: Started): number {
  return ((host.app.getHttpServer() as Server).address() as { port: number }).port;
}

const held = (host: Started) => host.app.get(HeldRequests);

describe('a subscriber that does not read', () => {
  const LIMIT = 64 * 1024;
  const app = useApp(LIMIT);

  /** Opens `readers` reading subscribers and one that never reads, on one feed. */
  async function subscribe(run: number, readers: number) {
    const stalled = await openStalled(
      port(app.host),
      `/padded/${run}/stream`,
      'Accept: text/event-stream\r\n',
    );
    app.sockets.push(stalled);
    const open = await Promise.all(
      Array.from({ length: readers }, () => SseReader.open(`${app.host.url}/padded/${run}/stream`)),
    );
    app.readers.push(...open);
    await Promise.all(open.map((r) => r.event(1, 15_000)));
    await waitFor(() => held(app.host).size === readers + 1, { message: 'all streams open' });
    return { stalled, open };
  }

  /** Commits one change at a time, each delivered to every reader, until `done` holds. */
  async function flow(run: number, readers: SseReader[], done: () => boolean) {
    const ids: string[] = [];
    while (!done() && ids.length < MAX_CHANGES) {
      ids.push(await insertItem(writer, run));
      await Promise.all(readers.map((r) => r.event(ids.length + 1, 15_000)));
    }
    return ids;
  }

  /** One drop since `before`: the stalled one went over the limit and then took nothing for a while. */
  async function dropped(before: number) {
    await waitFor(() => drops().length > before, {
      timeoutMs: 15_000,
      message: 'the stalled subscriber was not dropped',
    });
    expect(drops().length - before).toBe(1);
  }

  const drops = () =>
    app.events.filter((e): e is Extract<PollingEvent, { type: 'dropped' }> => e.type === 'dropped');

  it('is dropped once its connection holds more than maxBufferedBytes; the others get every change in order', async () => {
    const before = drops().length;
    const { open } = await subscribe(1, 3);
    const ids = await flow(1, open, () => drops().length > before);
    await dropped(before);
    const [drop] = drops().slice(before);
    expect(drop.feed).toBe('items');
    // Bounded: what it held when it was dropped is the limit plus at most one event.
    expect(drop.bufferedBytes).toBeGreaterThan(LIMIT);
    expect(drop.bufferedBytes).toBeLessThanOrEqual(LIMIT + FRAME_MAX);
    await waitFor(() => held(app.host).size === 3, { message: 'the dropped slot is freed' });
    const metrics = parsePrometheusText(await (await fetch(`${app.host.url}/metrics`)).text());
    expect(metrics.value('polling_sse_dropped_total', { feed: 'items' })).toBe(1);

    // The others keep following: two more changes (maybe in one event), then each reader has
    // had every change once, in commit order.
    ids.push(await insertItem(writer, 1), await insertItem(writer, 1));
    const received = (r: SseReader) => r.events.slice(1).flatMap((e) => idsOf(e.data));
    await Promise.all(open.map((r) => r.until(() => received(r).length >= ids.length, 15_000)));
    for (const reader of open) expect(received(reader)).toEqual(ids);
  });

  it('resumes with its Last-Event-ID and gets every change after it exactly once', async () => {
    const before = drops().length;
    const { stalled, open } = await subscribe(2, 1);
    const ids = await flow(2, open, () => drops().length > before);
    await dropped(before);
    // Changes committed while it is away.
    ids.push(await insertItem(writer, 2), await insertItem(writer, 2));

    // What reached it before the drop: whole events, then the end of the connection.
    const got = sseEvents(await readToEnd(stalled));
    expect(got.length).toBeGreaterThan(1); // the head and some changes
    const seen = got.slice(1).flatMap((e) => idsOf(e.data));
    expect(seen).toEqual(ids.slice(0, seen.length));

    const again = await SseReader.open(`${app.host.url}/padded/2/stream`, {
      'Last-Event-ID': got[got.length - 1].id!,
    });
    app.readers.push(again);
    await again.until(
      (r) => r.events.flatMap((e) => idsOf(e.data)).length >= ids.length - seen.length,
      15_000,
    );
    const resumed = again.events.flatMap((e) => idsOf(e.data));
    expect([...seen, ...resumed]).toEqual(ids);
    // ... and it keeps following.
    const next = await insertItem(writer, 2);
    await again.until((r) => r.events.some((e) => idsOf(e.data).includes(next)), 15_000);
  });
});

describe('subscribers of one feed', () => {
  const app = useApp(256 * 1024 * 1024);

  it('cost one handler run per change however fast each reads, and all get the same events', async () => {
    const slow = await openStalled(
      port(app.host),
      '/padded/3/stream',
      'Accept: text/event-stream\r\n',
    );
    app.sockets.push(slow);
    const readers = await Promise.all(
      [1, 2, 3, 4].map(() => SseReader.open(`${app.host.url}/padded/3/stream`)),
    );
    app.readers.push(...readers);
    await Promise.all(readers.map((r) => r.event(1, 15_000)));
    await waitFor(() => held(app.host).size === 5, { message: 'all streams open' });

    // Enough changes that the slow one's socket buffers fill: it stops taking events for a while.
    const runsBefore = handlerRuns;
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) {
      ids.push(await insertItem(writer, 3));
      await Promise.all(readers.map((r) => r.event(ids.length + 1, 15_000)));
    }
    expect(handlerRuns - runsBefore).toBe(ids.length);

    // The slow one reads again: it gets the very same events, one per change.
    expect(held(app.host).size).toBe(5);
    const expected = readers[0].events.map((e) => e.id);
    for (const reader of readers) expect(reader.events.map((e) => e.id)).toEqual(expected);
    const last = expected[expected.length - 1]!;
    const body = await readToEnd(slow, (text) => sseEvents(text).some((e) => e.id === last));
    const got = sseEvents(body);
    expect(got.map((e) => e.id)).toEqual(expected);
    expect(got.slice(1).map((e) => idsOf(e.data))).toEqual(ids.map((id) => [id]));
    expect(handlerRuns - runsBefore).toBe(ids.length);
  });
});
