import { All, Controller, Module, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Client } from 'pg';
import { ChangeReader, DurableStream, PollContext, PollingModule } from '../../src';
import { createItemsTable, insertItem, itemsOptions } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';

const revoked = new Set<string>();
let failing = false;
let rowsClient: Client;

@Controller()
class ItemsStreamController {
  @All('runs/:run')
  @DurableStream({
    feed: 'items',
    partition: 'run',
    authorize: (req) => !revoked.has(String(req.headers['x-user'])),
    keepAliveS: 0.2,
    sseCloseS: 1.5,
  })
  async rows(@PollContext() poll: PollContext) {
    if (failing) throw new Error('the handler failed');
    const { rows } =
      poll.since === null
        ? await rowsClient.query('SELECT id::text AS id, body FROM items WHERE run = 1')
        : await rowsClient.query(
            'SELECT id::text AS id, body FROM items WHERE id = ANY($1::bigint[])',
            [poll.changedIds],
          );
    return rows;
  }
}

/** `authorize` on open and on wake, a failing handler, and the SSE lifetime, over HTTP. */
describe('@DurableStream: authorize, handler errors, SSE lifetime', () => {
  let db: TestDatabase;
  let writer: Client;
  let app: INestApplication;
  let url: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    await createItemsTable(db);
    writer = new Client(db.config);
    await writer.connect();
    rowsClient = new Client(db.config);
    await rowsClient.connect();
    @Module({
      imports: [PollingModule.forRoot(itemsOptions(db))],
      controllers: [ItemsStreamController],
    })
    class StreamModule {}
    app = await NestFactory.create(StreamModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    await app.get(ChangeReader).whenLive();
    url = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/runs/1`;
  });

  afterEach(() => {
    revoked.clear();
    failing = false;
  });

  afterAll(async () => {
    app?.getHttpServer().closeAllConnections();
    await app?.close();
    await rowsClient?.end();
    await writer?.end();
    await db?.drop();
  });

  const as = (user: string) => ({ 'x-user': user });
  const tail = async () => (await fetch(url)).headers.get('stream-next-offset')!;

  /** Reads a whole SSE response (the server ends it). */
  async function readSse(offset: string, user: string, during?: () => Promise<void>) {
    const res = await fetch(`${url}?offset=${offset}&live=sse`, { headers: as(user) });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const text = res.text();
    await new Promise((r) => setTimeout(r, 100));
    await during?.();
    return text;
  }

  it('answers 403 in JSON when authorize refuses the open, in every mode', async () => {
    const offset = await tail();
    revoked.add('mallory');
    for (const mode of ['', '&live=long-poll', '&live=sse']) {
      const res = await fetch(`${url}?offset=${offset}${mode}`, { headers: as('mallory') });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ statusCode: 403 });
    }
  });

  it('re-checks authorize when a held long-poll read wakes: 403 once access is revoked', async () => {
    const offset = await tail();
    const read = fetch(`${url}?offset=${offset}&live=long-poll`, { headers: as('alice') });
    await new Promise((r) => setTimeout(r, 200));
    revoked.add('alice');
    await insertItem(writer, 1, 'after revoke');
    const res = await read;
    expect(res.status).toBe(403);
  });

  it('ends an SSE read with an error event when access is revoked, before sending the change', async () => {
    const offset = await tail();
    const text = await readSse(offset, 'bob', async () => {
      revoked.add('bob');
      await insertItem(writer, 1, 'secret');
    });
    expect(text).toContain('event: error\ndata:{"statusCode":403');
    expect(text).not.toContain('secret');
  });

  it('ends an SSE read with a 500 error event (details only in the log) when the handler fails', async () => {
    const offset = await tail();
    const text = await readSse(offset, 'carol', async () => {
      failing = true;
      await insertItem(writer, 1, 'boom');
    });
    expect(text).toContain(
      'event: error\ndata:{"statusCode":500,"message":"Internal server error"}',
    );
    expect(text).not.toContain('the handler failed');
  });

  it('sends keep-alive comments while quiet and ends the response after sseCloseS', async () => {
    const offset = await tail();
    const started = Date.now();
    const text = await readSse(offset, 'dave');
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1400);
    expect(elapsed).toBeLessThan(5000);
    expect(text.startsWith('event: control\n')).toBe(true); // caught up at once
    expect(text.match(/: keep-alive\n\n/g)!.length).toBeGreaterThanOrEqual(3);
  });

  it('answers a read from -1 with every row as an insert', async () => {
    await waitFor(async () => ((await (await fetch(url)).json()) as unknown[]).length >= 2);
    const messages = (await (await fetch(url)).json()) as { headers: { operation: string } }[];
    expect(new Set(messages.map((m) => m.headers.operation))).toEqual(new Set(['insert']));
  });
});
