import { Controller, Get, Sse, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Client } from 'pg';
import { filter, firstValueFrom } from 'rxjs';
import { ChangeReader, LiveStream, LongPoll, PollContext, PollingModule } from '../../src';
import { CHANGE_INDEX, type ChangeIndex } from '../../src/change-index/change-index.interface';
import { ChangeBus } from '../../src/change-bus/change-bus.service';
import { MemoryChangeIndex } from '../../src/change-index/memory-change-index';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { createItemsTable, itemsOptions } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

const MAX_HELD_PER_CLIENT = 3;

/** An index whose next `changesSince` answers at once but is delivered only when released. */
class HeldBackIndex {
  private armed = false;
  private release: (() => void) | null = null;
  /** Calls of changesSince, delivered or not. */
  reads = 0;

  constructor(private readonly inner: ChangeIndex) {}

  arm(): void {
    this.armed = true;
  }

  get pending(): boolean {
    return this.release !== null;
  }

  deliver(): void {
    this.release?.();
    this.release = null;
  }

  wrap(): ChangeIndex {
    return new Proxy(this.inner, {
      get: (target, name, receiver) => {
        if (name !== 'changesSince') return Reflect.get(target, name, receiver);
        return async (...args: Parameters<ChangeIndex['changesSince']>) => {
          this.reads++;
          const answer = await target.changesSince(...args);
          if (this.armed) {
            this.armed = false;
            await new Promise<void>((resolve) => (this.release = resolve));
          }
          return answer;
        };
      },
    });
  }
}

@Controller('t')
class CoreProbeController {
  @Get(':run/changes')
  @LongPoll({ feed: 'items', partition: 'run' })
  changes(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds, cursor: poll.cursor };
  }

  /** An `authorize` that takes a while (a lookup): concurrent opens overlap in it. */
  @Sse(':run/stream')
  @LiveStream({
    feed: 'items',
    partition: 'run',
    authorize: () => new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 100)),
  })
  stream(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds };
  }
}

describe('the hold core', () => {
  let db: TestDatabase;
  let app: INestApplication;
  let url: string;
  let writer: Client;
  const index = new HeldBackIndex(new MemoryChangeIndex());

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    const moduleRef = await Test.createTestingModule({
      imports: [
        PollingModule.forRoot(
          itemsOptions(db, { http: { maxHeldPerClient: MAX_HELD_PER_CLIENT } }),
        ),
      ],
      controllers: [CoreProbeController],
    })
      .overrideProvider(CHANGE_INDEX)
      .useValue(index.wrap())
      .compile();
    app = moduleRef.createNestApplication({ logger: ['error'] });
    app.enableShutdownHooks();
    await app.listen(0, '127.0.0.1');
    await app.get(ChangeReader).whenLive();
    url = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
    writer = new Client(db.config);
    await writer.connect();
  });

  afterAll(async () => {
    await writer?.end();
    await app?.close();
    await db?.drop();
  });

  it('a waiter that registers after a change does not join an index read that started before it', async () => {
    const head = await fetch(`${url}/t/1/changes`);
    const cursor = head.headers.get('poll-cursor')!;
    const held = app.get(HeldRequests);

    // A: its index read is answered (nothing new yet) but held back in flight.
    index.arm();
    const a = fetch(`${url}/t/1/changes?since=${cursor}&wait=5`);
    await waitFor(() => index.pending);

    // A change is indexed and its notice sent; then B registers with the same cursor.
    const noticed = firstValueFrom(
      app
        .get(ChangeBus)
        .notices$.pipe(filter((n) => n.kind === 'changes' && n.feeds.includes('items:1'))),
    );
    const { rows } = await writer.query(
      "INSERT INTO items (run, body) VALUES (1, 'x') RETURNING id",
    );
    await noticed;
    const b = fetch(`${url}/t/1/changes?since=${cursor}&wait=1.5`);
    let bAnswered = false;
    void b.finally(() => (bAnswered = true));
    // B registered and asked the index (and, reading on its own, may have answered already).
    await waitFor(() => held.size === 2 || bAnswered);
    index.deliver();

    const [answerA, answerB] = await Promise.all([a, b]);
    expect(answerA.status).toBe(200);
    // Joining A's read (answered before the change) would leave B asleep until its wait ends.
    expect(answerB.status).toBe(200);
    expect(((await answerB.json()) as { ids: string[] }).ids).toEqual([rows[0].id]);
  });

  it('concurrent SSE opens never exceed the held limits, even while authorize runs', async () => {
    const aborts = Array.from({ length: 12 }, () => new AbortController());
    try {
      const answers = await Promise.all(
        aborts.map((abort) => fetch(`${url}/t/2/stream`, { signal: abort.signal })),
      );
      const accepted = answers.filter((r) => r.status === 200);
      const refused = answers.filter((r) => r.status === 429);
      expect(accepted.length).toBeGreaterThan(0);
      expect(accepted.length).toBeLessThanOrEqual(MAX_HELD_PER_CLIENT);
      expect(accepted.length + refused.length).toBe(aborts.length);
      for (const r of accepted) expect(r.headers.get('content-type')).toMatch(/event-stream/);
    } finally {
      for (const abort of aborts) abort.abort();
    }
    await waitFor(() => app.get(HeldRequests).size === 0);
  });
});
