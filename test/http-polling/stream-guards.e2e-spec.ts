import {
  Controller,
  Injectable,
  Sse,
  UnauthorizedException,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import type { PollingRequest as Request } from '../../src';
import { Client } from 'pg';
import { LiveStream, PollContext } from '../../src';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { startApp, type Started } from '../host-apps/feed-app';
import { createItemsTable, insertItem, startFailure } from '../support/polling-app';
import { SseReader } from '../support/sse-reader';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

/*
 * An app's guard on a @LiveStream route. Written below @LiveStream it runs before the stream's
 * gate: an unauthenticated client is refused before it is admitted or anything is read, and what
 * the guard attaches (`req.user`) is what `authorize` sees on the open and on every wake-up.
 * Written above, Nest would run it after the gate (a method's guards run in the order their
 * decorators apply, bottom first): the start fails, naming the route and the fix.
 */

type UserRequest = Request & { user?: { name: string } };
const revoked = new Set<string>();

@Injectable()
class UserGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<UserRequest>();
    const name = req.headers['x-user'] as string | undefined;
    if (!name) throw new UnauthorizedException('who are you?');
    req.user = { name };
    return true;
  }
}

const authorize = (req: Request) => {
  const user = (req as UserRequest).user;
  if (!user) throw new Error('authorize ran before the guard');
  return !revoked.has(user.name);
};

@Controller()
class GuardedStreamController {
  @Sse('guarded/:run/stream')
  @LiveStream({ feed: 'items', partition: 'run', authorize })
  @UseGuards(UserGuard)
  stream(@PollContext() poll: PollContext) {
    return { ids: poll.changedIds, cursor: poll.cursor };
  }
}

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

describe('a guard written below @LiveStream', () => {
  let host: Started;
  let held: HeldRequests;
  const readers: SseReader[] = [];

  beforeAll(async () => {
    host = await startApp(db, { controllers: [GuardedStreamController] });
    held = host.app.get(HeldRequests);
  }, 30_000);

  afterAll(async () => {
    for (const reader of readers) reader.close();
    await host?.close();
  });

  it('refuses an unauthenticated client before admitting it', async () => {
    const res = await fetch(`${host.url}/guarded/1/stream?since=not-a-cursor`);
    // The guard's 401, not the gate's 400 for the cursor: nothing was read for this client.
    expect(res.status).toBe(401);
    expect(held.size).toBe(0);
  });

  it('gives authorize what the guard attached, on the open and on a wake-up', async () => {
    const reader = await SseReader.open(`${host.url}/guarded/2/stream`, { 'x-user': 'bob' });
    readers.push(reader);
    expect(reader.status).toBe(200);
    await waitFor(() => reader.blocks.some((b) => b.data !== undefined));
    revoked.add('bob');
    await insertItem(writer, 2);
    await waitFor(() => reader.blocks.some((b) => b.event === 'error'));
    const error = reader.blocks.find((b) => b.event === 'error')!;
    expect(JSON.parse(error.data!)).toMatchObject({ statusCode: 403 });
    await waitFor(() => held.size === 0);
  });
});

it('fails the start for a guard written above @LiveStream, naming the route and the fix', async () => {
  @Controller()
  class GuardAboveController {
    @Sse('above/:run/stream')
    @UseGuards(UserGuard)
    @LiveStream({ feed: 'items', partition: 'run', authorize })
    stream(@PollContext() poll: PollContext) {
      return { ids: poll.changedIds };
    }
  }
  expect(await startFailure(db, [GuardAboveController])).toEqual(
    expect.objectContaining({
      message: expect.stringMatching(
        /GuardAboveController\.stream: @UseGuards\(UserGuard\) .*below @LiveStream/,
      ),
    }),
  );
});
