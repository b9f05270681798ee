import {
  Controller,
  Get,
  UseGuards,
  type CallHandler,
  type CanActivate,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { map, type Observable } from 'rxjs';
import { LongPoll, PollContext, PollingModule } from '../../src';
import {
  startItemsApp,
  startItemsFixture,
  type ItemsApp,
  type ItemsFixture,
} from '../fixtures/items-app';
import { createItemsTable, insertItem, itemsOptions } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

interface ChangesBody {
  changes: { id: string }[];
  cursor: string;
}

/** `@LongPoll({ cache: 'public' })`: what a shared cache in front of the app is told. */
describe('cacheable polls (cache: public)', () => {
  let fixture: ItemsFixture;

  beforeAll(async () => {
    fixture = await startItemsFixture();
  });

  afterAll(async () => {
    await fixture?.close();
  });

  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(`${fixture.items.url}${path}`, { headers });

  async function head(route = 'changes'): Promise<string> {
    const res = await get(`/public/1/${route}`);
    return ((await res.json()) as ChangesBody).cursor;
  }

  it('marks a 200 with changes public, with the next cursor as its ETag', async () => {
    const since = await head();
    const id = await insertItem(fixture.writer, 1);
    const res = await get(`/public/1/changes?since=${since}&wait=5`);
    const body = (await res.json()) as ChangesBody;
    expect(res.status).toBe(200);
    expect(body.changes.map((c) => c.id)).toEqual([id]);
    expect(res.headers.get('cache-control')).toBe('public, max-age=60');
    expect(res.headers.get('etag')).toBe(`"${body.cursor}"`);
    expect(body.cursor).not.toBe(since);
  });

  it('marks the head (no since) public, so new followers share it', async () => {
    const res = await get('/public/1/changes');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=60');
    await res.arrayBuffer();
  });

  it('never lets a cache keep a 204, 304, 400 or a short poll that found nothing', async () => {
    const since = await head();
    const timeout = await get(`/public/1/changes?since=${since}&wait=0.2`);
    expect(timeout.status).toBe(204);
    expect(timeout.headers.get('cache-control')).toBe('no-store');

    const cursor = await head('poll');
    const nothing = await get(`/public/1/poll?since=${cursor}`);
    expect(nothing.status).toBe(200);
    expect(((await nothing.json()) as ChangesBody).changes).toEqual([]);
    expect(nothing.headers.get('cache-control')).toBe('no-store');

    const unchanged = await get(`/public/1/poll?since=${cursor}`, {
      'If-None-Match': `"${cursor}"`,
    });
    expect(unchanged.status).toBe(304);
    expect(unchanged.headers.get('cache-control')).toBe('no-store');

    const bad = await get('/public/1/changes?since=garbage&wait=0');
    expect(bad.status).toBe(400);
    expect(bad.headers.get('cache-control')).toBe('no-store');
    await bad.arrayBuffer();
  });

  it('gives a short poll with changes its own max-age', async () => {
    const since = await head('poll');
    await insertItem(fixture.writer, 1);
    // A short poll answers at once: ask until the reader has indexed the change.
    let res: Response;
    let changes: unknown[] = [];
    const deadline = Date.now() + 5000;
    do {
      res = await get(`/public/1/poll?since=${since}`);
      changes = ((await res.json()) as ChangesBody).changes;
    } while (changes.length === 0 && Date.now() < deadline);
    expect(changes).toHaveLength(1);
    expect(res.headers.get('cache-control')).toBe('public, max-age=5');
  });

  it('keeps the other routes private', async () => {
    const res = await get('/runs/1/changes');
    expect(res.headers.get('cache-control')).toBe('private, no-cache');
    await res.arrayBuffer();
  });
});

describe('a public route after a new index generation', () => {
  let db: TestDatabase;
  let items: ItemsApp | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
  });

  afterAll(async () => {
    await items?.close();
    await db?.drop();
  });

  it('never lets a cache keep the 409 (a cached must-refetch would loop every follower)', async () => {
    items = await startItemsApp(db.url);
    const first = await fetch(`${items.url}/public/1/changes`);
    const since = ((await first.json()) as ChangesBody).cursor;
    await items.close();
    // Same database, new process: a new in-memory index, so a new generation.
    items = await startItemsApp(db.url);
    const res = await fetch(`${items.url}/public/1/changes?since=${since}&wait=0`);
    expect(res.status).toBe(409);
    expect(res.headers.get('cache-control')).toBe('no-store');
    await res.arrayBuffer();
  });
});

class AllowAll implements CanActivate {
  canActivate(): boolean {
    return true;
  }
}

@Controller('guarded')
class GuardedPublicController {
  @Get(':run/changes')
  @UseGuards(AllowAll)
  @LongPoll({ feed: 'items', partition: 'run', cache: 'public' })
  changes(@PollContext() poll: PollContext) {
    return { cursor: poll.cursor };
  }
}

@Controller('authorized')
class AuthorizedPublicController {
  @Get(':run/changes')
  @LongPoll({ feed: 'items', partition: 'run', cache: 'public', authorize: () => true })
  changes(@PollContext() poll: PollContext) {
    return { cursor: poll.cursor };
  }
}

@Controller('by-header')
class HeaderPartitionPublicController {
  @Get('changes')
  @LongPoll({ feed: 'items', partition: (req) => req.headers['x-run'], cache: 'public' })
  changes(@PollContext() poll: PollContext) {
    return { cursor: poll.cursor };
  }
}

describe('cache: public on a private route', () => {
  let fixture: ItemsFixture;

  beforeAll(async () => {
    fixture = await startItemsFixture();
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it.each([
    ['guards', GuardedPublicController],
    ['authorize', AuthorizedPublicController],
  ])('fails the start on a route with %s', async (what, controller) => {
    expect(await startupError(controller)).toContain(`cache 'public' on a route with ${what}`);
  });

  it('fails the start when the partition is not in the URL (a cache keys on the URL)', async () => {
    expect(await startupError(HeaderPartitionPublicController)).toContain(
      "cache 'public' needs the partition in the URL",
    );
  });

  async function startupError(controller: new () => unknown): Promise<string | undefined> {
    const moduleRef = await Test.createTestingModule({
      imports: [PollingModule.forRoot(itemsOptions(fixture.db))],
      controllers: [controller],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    const error = await app.init().then(
      () => null,
      (e: Error) => e,
    );
    await app.close().catch(() => undefined);
    return error?.message;
  }
});

/** An app-wide interceptor that checks every answer on its way out (a response schema check). */
class AnswerCheck implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const req = context.switchToHttp().getRequest<{ headers: Record<string, string> }>();
    return next.handle().pipe(
      map((body) => {
        if (req.headers['x-fail-check']) throw new Error('answer does not match its schema');
        return body;
      }),
    );
  }
}

describe('a public route under app-wide interceptors and middleware', () => {
  let fixture: ItemsFixture;

  beforeAll(async () => {
    fixture = await startItemsFixture({}, (app) => {
      app.useGlobalInterceptors(new AnswerCheck());
      // A session middleware: a caller with a session gets its cookie (re)set on every answer.
      app.use((req: IncomingMessage, res: ServerResponse, next: () => void) => {
        const sid = req.headers['x-session'];
        if (typeof sid === 'string') res.setHeader('Set-Cookie', `sid=${sid}; HttpOnly`);
        next();
      });
    });
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('never marks the error public (a shared cache would serve the 500 to every follower)', async () => {
    const res = await fetch(`${fixture.items.url}/public/1/changes`, {
      headers: { 'x-fail-check': '1' },
    });
    expect(res.status).toBe(500);
    expect(res.headers.get('cache-control')).toBe('no-store');
    await res.arrayBuffer();
  });

  it("never marks an answer carrying a Set-Cookie public (a cache would hand one caller's session to all)", async () => {
    const res = await fetch(`${fixture.items.url}/public/1/changes`, {
      headers: { 'x-session': 'secret-of-alice' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toContain('secret-of-alice');
    expect(res.headers.get('cache-control')).toBe('no-store');
    await res.arrayBuffer();
    const anonymous = await fetch(`${fixture.items.url}/public/1/changes`);
    expect(anonymous.headers.get('cache-control')).toBe('public, max-age=60');
    await anonymous.arrayBuffer();
  });
});
