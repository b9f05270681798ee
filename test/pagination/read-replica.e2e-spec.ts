import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { CursorPaginator, loadFeedChanges } from '../../src';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { Article } from './article.entity';

/**
 * The README's read-replica recipe. A lagging replica is played by a second database that holds
 * only the rows committed before the lag: TypeORM's replication mode sends reads to it by default,
 * so a row committed before the feed head can be missing there, and loadFeedChanges would report
 * it as a delete. A query runner on the primary ('master') reads what the feed announced.
 */
describe('read replicas: reading pages and changed rows from the primary', () => {
  let primary: TestDatabase;
  let replica: TestDatabase;
  let dataSource: DataSource;
  let announcedId: string;

  beforeAll(async () => {
    primary = await createTestDatabase();
    replica = await createTestDatabase();
    for (const db of [primary, replica]) {
      const setup = await new DataSource({
        type: 'postgres',
        url: db.url,
        entities: [Article],
        synchronize: true,
      }).initialize();
      await setup.destroy();
    }
    const insertOld = `INSERT INTO articles (id, rank, created_at, author) VALUES (1, 1, now(), 'a')`;
    for (const db of [primary, replica]) await query(db, insertOld);
    // Committed on the primary, announced by the feed, not yet replayed on the replica.
    const { rows } = await query(
      primary,
      `INSERT INTO articles (id, rank, created_at, author) VALUES (2, 2, now(), 'b') RETURNING id::text`,
    );
    announcedId = rows[0].id;
    dataSource = await new DataSource({
      type: 'postgres',
      replication: { master: { url: primary.url }, slaves: [{ url: replica.url }] },
      entities: [Article],
    }).initialize();
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await primary?.drop();
    await replica?.drop();
  });

  it('by default a lagging replica turns an announced upsert into a delete (the hazard)', async () => {
    const changes = await loadFeedChanges(dataSource.getRepository(Article), [announcedId]);
    expect(changes).toEqual([{ id: announcedId, op: 'delete' }]);
  });

  it('loadFeedChanges and CursorPaginator on a primary query runner see the announced row', async () => {
    const onPrimary = dataSource.createQueryRunner('master');
    try {
      const articles = onPrimary.manager.getRepository(Article);
      const changes = await loadFeedChanges(articles, [announcedId]);
      expect(changes).toMatchObject([{ id: announcedId, op: 'upsert', row: { author: 'b' } }]);

      const pages = new CursorPaginator<Article>({ name: 'articles', sortable: ['rank'] });
      const page = await pages.paginate(articles, pages.parse({ sort: 'rank:asc' }));
      expect(page.items.map((a) => a.id)).toEqual(['1', '2']);
    } finally {
      await onPrimary.release();
    }
  });
});

async function query(db: TestDatabase, sql: string) {
  const client = new Client(db.config);
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}
