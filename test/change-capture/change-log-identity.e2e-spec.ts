import { Client } from 'pg';
import { readChangeLogIdentity } from '../../src/change-capture/change-log-identity';
import { indexKeys } from '../../src/change-capture/index-keys';
import { TcpProxy } from '../support/tcp-proxy';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

/** The name a shared index gets from its change log: stable for one, distinct between two. */
describe('change log identity', () => {
  const dbs: TestDatabase[] = [];
  const clients: Client[] = [];

  beforeAll(async () => {
    for (let i = 0; i < 2; i++) {
      const db = await createTestDatabase();
      const client = new Client(db.config);
      await client.connect();
      dbs.push(db);
      clients.push(client);
    }
  });

  afterAll(async () => {
    for (const client of clients) await client.end();
    for (const db of dbs) await db.drop();
  });

  it('is the same for every connection to one change log', async () => {
    const again = new Client(dbs[0].config);
    await again.connect();
    try {
      const first = await readChangeLogIdentity(clients[0], 'public');
      expect(first).toMatch(/^[0-9a-f]{12}$/);
      expect(await readChangeLogIdentity(again, 'public')).toBe(first);
    } finally {
      await again.end();
    }
  });

  it('differs between databases and between schemas of one database', async () => {
    const ids = [
      await readChangeLogIdentity(clients[0], 'public'),
      await readChangeLogIdentity(clients[0], 'polling'),
      await readChangeLogIdentity(clients[1], 'public'),
    ];
    expect(new Set(ids).size).toBe(3);
  });

  it('still tells databases apart for a role that may not read pg_control_system()', async () => {
    const role = `polling_identity_${process.pid}`;
    const admin = clients[1];
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    // pg_proc is per database: the revoke touches only this test database.
    await admin.query('REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC');
    const restricted = new Client({ ...dbs[1].config, user: role });
    try {
      await restricted.connect();
      const id = await readChangeLogIdentity(restricted, 'public');
      expect(id).toMatch(/^[0-9a-f]{12}$/);
      expect(id).not.toBe(await readChangeLogIdentity(clients[0], 'public'));
      expect(await readChangeLogIdentity(restricted, 'polling')).not.toBe(id);
    } finally {
      await restricted.end();
      await admin.query(`DROP ROLE ${role}`);
    }
  });

  it('fails when the connection drops while reading it, instead of naming the index otherwise', async () => {
    // An instance that named its index after the database name because its connection dropped
    // at start would lead an index of its own, apart from its peers'.
    const url = new URL(dbs[0].url);
    const proxy = await TcpProxy.start(Number(url.port || 5432), url.hostname);
    const client = new Client({ ...dbs[0].config, host: '127.0.0.1', port: proxy.port });
    client.on('error', () => undefined);
    try {
      await client.connect();
      proxy.dropWhenClientSends('pg_control_system');
      await expect(readChangeLogIdentity(client, 'public')).rejects.toThrow();
    } finally {
      await client.end().catch(() => undefined);
      await proxy.close();
    }
  });

  it('names the index keys, the bus channel and the leader lock after it', () => {
    expect(indexKeys('polling:', 'public', '0123456789ab')).toEqual({
      prefix: 'polling:0123456789ab:',
      busChannel: 'polling:0123456789ab:bus',
      leaderLock: 'nestjs-polling:public:polling:0123456789ab:',
      readerState: 'polling:0123456789ab:',
    });
  });

  it('puts the change log id in a hash tag on a Redis Cluster: one slot for the whole index', () => {
    expect(indexKeys('polling:', 'public', '0123456789ab', true)).toMatchObject({
      prefix: 'polling:{0123456789ab}:',
      busChannel: 'polling:{0123456789ab}:bus',
    });
    // A `{ client: cluster }` is not seen by option checks: the braces are refused here.
    expect(() => indexKeys('app{x}:', 'public', '0123456789ab', true)).toThrow(
      /keyPrefix must not contain \{ or \} with a Redis Cluster/,
    );
  });

  it('gives every in-memory index a reader-state row of its own', () => {
    const one = indexKeys('polling:', 'public', null);
    const other = indexKeys('polling:', 'public', null);
    expect(one.readerState).toMatch(/^polling:memory:/);
    expect(one.readerState).not.toBe(other.readerState);
  });
});
