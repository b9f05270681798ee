import { connect } from 'node:net';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { createItemsTable } from '../support/polling-app';
import { startItemsApp, type ItemsApp } from '../fixtures/items-app';

interface ErrorBody {
  statusCode: number;
  error?: string;
  message: unknown;
  cursor?: string;
}
interface ChangesBody {
  changes: unknown[];
  cursor: string;
}

/** Every bad input is a 4xx with the JSON error shape of DESIGN.md §3, never a 500. */
async function expectJsonError(res: Response, status: number): Promise<ErrorBody> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  const body = (await res.json()) as ErrorBody;
  expect(body.statusCode).toBe(status);
  expect(typeof body.message).toBe('string');
  expect((body.message as string).length).toBeGreaterThan(0);
  if (body.error !== undefined) expect(typeof body.error).toBe('string');
  return body;
}

/** Sends raw bytes; resolves with the response status (null if none) once the server closes. */
function rawRequest(port: number, bytes: string): Promise<{ status: number | null }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`server neither answered nor closed: ${JSON.stringify(data)}`));
    }, 5000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      resolve({ status: match ? Number(match[1]) : null });
    });
    socket.write(bytes);
  });
}

describe('bad input over HTTP', () => {
  let db: TestDatabase;
  let items: ItemsApp;
  let port: number;
  let cursor: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    items = await startItemsApp(db.url);
    port = Number(new URL(items.url).port);
    cursor = await headCursor(1);
  });

  afterAll(async () => {
    await items?.close();
    await db?.drop();
  });

  async function headCursor(run: number): Promise<string> {
    const res = await fetch(`${items.url}/runs/${run}/changes`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as ChangesBody;
    expect(body.cursor).toBe(res.headers.get('poll-cursor'));
    return body.cursor;
  }

  /** A valid poll still works after the bad ones. */
  async function expectStillServing(): Promise<void> {
    const res = await fetch(`${items.url}/runs/1/changes?since=${cursor}&wait=0`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as ChangesBody).cursor).toBe(cursor);
  }

  const changes = (query: string, init?: RequestInit) =>
    fetch(`${items.url}/runs/1/changes?${query}`, init);

  /** Replaces the character at `at` with another one of the cursor alphabet. */
  function flip(text: string, at: number): string {
    const replacement = text[at] === 'a' ? 'b' : 'a';
    return text.slice(0, at) + replacement + text.slice(at + 1);
  }

  it.each([
    ['empty', ''],
    ['not a cursor', 'x'],
    ['negative', '-1'],
    ['exponent', '1e3'],
    ['2^64', '18446744073709551616'],
    ['a long string', 'a'.repeat(65)],
  ])('rejects since = %s with 400', async (_name, since) => {
    await expectJsonError(await changes(`since=${encodeURIComponent(since)}&wait=0`), 400);
  });

  it('rejects a cursor whose MAC, position or generation was altered with 400', async () => {
    const [generation, position, mac] = cursor.split('.');
    const tampered = [
      `${generation}.${position}.${flip(mac, mac.length - 1)}`,
      `${generation}.${position}.${flip(mac, 0)}`,
      `${generation}.${Number(position) + 1}.${mac}`,
      `${generation}.${position}7.${mac}`,
      `${flip(generation, generation.length - 1)}.${position}.${mac}`,
      `${generation}0.${position}.${mac}`,
    ];
    for (const since of tampered) {
      expect(since).not.toBe(cursor);
      await expectJsonError(await changes(`since=${since}&wait=0`), 400);
    }
    await expectStillServing();
  });

  it('rejects a repeated or structured since with 400', async () => {
    await expectJsonError(await changes('since=a&since=b'), 400);
    await expectJsonError(await changes(`since=${cursor}&since=${cursor}&wait=0`), 400);
    await expectJsonError(await changes('since[a]=1'), 400);
    await expectJsonError(await changes(`since=${cursor}&since[a]=1&wait=0`), 400);
    await expectJsonError(await changes('since%5Ba%5D=1'), 400);
  });

  it.each([['-1'], ['NaN'], ['1e12'], ['abc'], [''], ['Infinity']])(
    'rejects wait = %s with 400',
    async (wait) => {
      await expectJsonError(await changes(`since=${cursor}&wait=${wait}`), 400);
    },
  );

  it('rejects a repeated wait and a bad Prefer: wait with 400', async () => {
    await expectJsonError(await changes(`since=${cursor}&wait=0&wait=1`), 400);
    await expectJsonError(
      await changes(`since=${cursor}`, { headers: { Prefer: 'wait=abc' } }),
      400,
    );
    await expectJsonError(
      await changes(`since=${cursor}`, { headers: { Prefer: 'wait=-1' } }),
      400,
    );
    await expectJsonError(await changes(`since=${cursor}`, { headers: { Prefer: 'wait=' } }), 400);
  });

  it('rejects a partition longer than 200 characters with 400', async () => {
    await expectJsonError(await fetch(`${items.url}/runs/${'7'.repeat(201)}/changes`), 400);
    await expectJsonError(await fetch(`${items.url}/runs/${'7'.repeat(201)}/poll`), 400);
    await expectJsonError(await fetch(`${items.url}/runs/a%0Ab/changes`), 400);
    const longest = await fetch(`${items.url}/runs/${'7'.repeat(200)}/changes`);
    expect(longest.status).toBe(200);
    await longest.arrayBuffer();
  });

  it('rejects a 1 MB since before Nest sees it (Node: 431 in JSON) and keeps serving', async () => {
    await expectJsonError(await changes(`since=${'a'.repeat(1024 * 1024)}`), 431);
    await expectStillServing();
  });

  it('rejects CR or LF inside a header value (Node parser) and keeps serving', async () => {
    const requests = [
      'GET /runs/1/changes HTTP/1.1\r\nHost: x\r\nPrefer: wait=1\rX\r\n\r\n',
      'GET /runs/1/changes HTTP/1.1\r\nHost: x\r\nPrefer: wait=1\nX: y\r\n\r\n',
      'GET /runs/1/changes HTTP/1.1\r\nHost: x\r\nX-A: a\rb: c\r\n\r\n',
      `GET /runs/1/changes?since=${cursor} HTTP/1.1\r\nHost: x\r\nIf-None-Match: "a\nb"\r\n\r\n`,
    ];
    for (const request of requests) {
      const { status } = await rawRequest(port, request);
      expect(status).toBe(400);
    }
    await expectStillServing();
  });

  it('keeps serving after the whole batch of bad requests', async () => {
    await expectStillServing();
    const other = await headCursor(2);
    const res = await fetch(`${items.url}/runs/2/changes?since=${other}&wait=0.2`);
    expect(res.status).toBe(204);
    expect(res.headers.get('poll-cursor')).toBe(other);
  });
});

describe('a cursor from another index generation', () => {
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

  it('answers 409 with the new head cursor, which then works', async () => {
    items = await startItemsApp(db.url);
    const first = await fetch(`${items.url}/runs/1/changes`);
    const old = ((await first.json()) as ChangesBody).cursor;
    await items.close();
    items = undefined;

    // Same database, new process: a new in-memory index, so a new generation.
    items = await startItemsApp(db.url);
    const res = await fetch(`${items.url}/runs/1/changes?since=${old}&wait=0`);
    const body = await expectJsonError(res, 409);
    expect(typeof body.cursor).toBe('string');
    expect(body.cursor).not.toBe(old);
    expect(res.headers.get('poll-cursor')).toBe(body.cursor);
    expect(body.cursor!.split('.')[0]).not.toBe(old.split('.')[0]);

    const again = await fetch(`${items.url}/runs/1/changes?since=${body.cursor}&wait=0.2`);
    expect([200, 204]).toContain(again.status);
    expect(again.headers.get('poll-cursor')).toBe(body.cursor);
    await again.arrayBuffer();
  });
});
