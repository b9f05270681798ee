import { ClassSerializerInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { Client } from 'pg';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { createItemsTable, insertItem } from '../support/polling-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { waitFor } from '../support/wait-for';
import { startApp, type Started } from './feed-app';
import { HostClient } from './host-client';
import { ViewFeedsController } from './sse-feeds';

let db: TestDatabase;
let writer: Client;
let host: Started;
let client: HostClient;

beforeAll(async () => {
  db = await createTestDatabase();
  await createItemsTable(db);
  writer = new Client(db.config);
  await writer.connect();
  host = await startApp(db, { controllers: [ViewFeedsController] }, (app) =>
    app.useGlobalInterceptors(new ClassSerializerInterceptor(app.get(Reflector))),
  );
  const { port } = new URL(host.url);
  client = new HostClient({ kind: 'tcp', host: '127.0.0.1', port: Number(port) });
}, 30_000);

afterAll(async () => {
  await host?.close();
  await writer?.end();
  await db?.drop();
});

const insert = (run: number) => insertItem(writer, run, 'view');

describe('@LiveStream in an app with a global ClassSerializerInterceptor', () => {
  it('the long poll leaves out the excluded field', async () => {
    const res = await fetch(`${host.url}/views/31/changes`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ids: [], cursor: expect.any(String) });
  });

  it('a stream with the serializer above @LiveStream leaves it out of every event', async () => {
    const stream = await client.stream('/views/32/serialized');
    try {
      expect(stream.status).toBe(200);
      const head = await stream.next((e) => e.id !== undefined);
      expect(JSON.parse(head.data!)).toEqual({ ids: [], cursor: head.id });
      const id = await insert(32);
      const event = await stream.next((e) => e.data?.includes(`"${id}"`) ?? false);
      expect(JSON.parse(event.data!)).toEqual({ ids: [id], cursor: event.id });
    } finally {
      stream.close();
    }
    await waitFor(() => host.app.get(HeldRequests).size === 0);
  });

  it('a global serializer does not run per event (documented): the field is sent', async () => {
    const stream = await client.stream('/views/33/stream');
    try {
      const head = await stream.next((e) => e.id !== undefined);
      expect(JSON.parse(head.data!)).toEqual({ ids: [], cursor: head.id, secret: 'never sent' });
    } finally {
      stream.close();
    }
  });
});
