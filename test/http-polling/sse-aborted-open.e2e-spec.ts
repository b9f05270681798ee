import { Controller, Injectable, Sse, UseGuards, type CanActivate } from '@nestjs/common';
import { LiveStream, PollContext } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { startApp, type Started } from '../host-apps/feed-app';
import { createItemsTable } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/*
 * A client that gives up on an SSE stream while the app still decides whether to open it (a slow
 * guard, a slow `authorize`: a database or auth service lookup) must not leave a held slot
 * behind: the held count returns to 0, however long the stream's start takes.
 */

const SLOW_MS = 400;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Injectable()
class SlowGuard implements CanActivate {
  async canActivate(): Promise<boolean> {
    await sleep(SLOW_MS);
    return true;
  }
}

@Controller()
class SlowStartController {
  @Sse('slow-guard/:run/stream')
  @LiveStream({ feed: 'items', partition: 'run' })
  @UseGuards(SlowGuard)
  guarded(@PollContext() poll: PollContext) {
    return { cursor: poll.cursor };
  }

  @Sse('slow-authorize/:run/stream')
  @LiveStream({
    feed: 'items',
    partition: 'run',
    authorize: async () => {
      await sleep(SLOW_MS);
      return true;
    },
  })
  authorized(@PollContext() poll: PollContext) {
    return { cursor: poll.cursor };
  }
}

let db: TestDatabase;
let host: Started;
let held: HeldRequests;

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  host = await startApp(db, { controllers: [SlowStartController] });
  held = host.app.get(HeldRequests);
}, 30_000);

afterAll(async () => {
  await host?.close();
  await db?.drop();
});

it.each(['slow-guard', 'slow-authorize'])(
  'a client that leaves during the %s start leaves no held slot',
  async (route) => {
    const clients = Array.from({ length: 5 }, () => new AbortController());
    const opens = clients.map((client, i) =>
      fetch(`${host.url}/${route}/${i}/stream`, { signal: client.signal }).catch(
        (error: unknown) => error,
      ),
    );
    await sleep(SLOW_MS / 4);
    for (const client of clients) client.abort();
    await Promise.all(opens);
    // Every start has finished by now; what it registered must have been released.
    await sleep(SLOW_MS * 2);
    await waitFor(() => held.size === 0, { message: `${held.size} held slots left` });
    expect(held.feedCount).toBe(0);
  },
);
