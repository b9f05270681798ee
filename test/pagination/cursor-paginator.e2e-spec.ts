import { BadRequestException } from '@nestjs/common';
import { Client } from 'pg';
import { DataSource, type Repository } from 'typeorm';
import { CursorPaginator, type SortField } from '../../src';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { Article } from './article.entity';

const ROWS = 10_000;

describe('CursorPaginator', () => {
  let db: TestDatabase;
  let dataSource: DataSource;
  let articles: Repository<Article>;
  let writer: Client;

  beforeAll(async () => {
    db = await createTestDatabase();
    dataSource = await new DataSource({
      type: 'postgres',
      url: db.url,
      entities: [Article],
      synchronize: true,
    }).initialize();
    articles = dataSource.getRepository(Article);
    writer = new Client(db.config);
    await writer.connect();
    // Ties on created_at (microsecond timestamps shared by 10 rows), a third of ranks NULL.
    await writer.query(
      `INSERT INTO articles (rank, created_at, author, body)
       SELECT CASE WHEN g % 3 = 0 THEN NULL ELSE g % 97 END,
              timestamptz '2026-01-01' + (g / 10) * interval '1.000001 second',
              'author' || (g % 13), 'v0'
       FROM generate_series(1, $1) g`,
      [ROWS],
    );
  });

  afterAll(async () => {
    await writer?.end();
    await dataSource?.destroy();
    await db?.drop();
  });

  const paginator = (name = 'articles', secret?: string) =>
    new CursorPaginator<Article>({
      name,
      sortable: ['rank', 'createdAt', 'author'],
      defaultLimit: 100,
      maxLimit: 500,
      secret,
    });

  async function walkForward(p: CursorPaginator<Article>, sort: string, limit = '137') {
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10_000; pages++) {
      const page = await p.paginate(
        articles,
        p.parse({ sort, limit, ...(after ? { after } : {}) }),
      );
      seen.push(...page.items.map((a) => a.id));
      if (!page.hasMore) return seen;
      after = page.nextCursor!;
    }
    throw new Error('walk did not end');
  }

  it.each([
    'createdAt:desc',
    'rank:asc,createdAt:desc',
    'rank:desc,author:asc',
    'author:desc,rank:asc,createdAt:asc',
  ])(
    'walks 10k rows by %s while others insert, update and delete: nothing that existed throughout is missed or repeated',
    async (sort) => {
      const { rows: before } = await writer.query('SELECT id::text FROM articles');
      const deleted = new Set<string>();
      let writing = true;
      const churn = (async () => {
        for (let i = 0; writing; i++) {
          const { rows } = await writer.query(
            `WITH victim AS (SELECT id FROM articles ORDER BY random() LIMIT 1)
             DELETE FROM articles WHERE id IN (SELECT id FROM victim) RETURNING id::text`,
          );
          rows.forEach((r) => deleted.add(r.id));
          await writer.query(
            `INSERT INTO articles (rank, created_at, author, body)
             VALUES ($1, now(), 'late', 'new')`,
            [i % 5 === 0 ? null : i % 97],
          );
          await writer.query(
            `UPDATE articles SET body = 'v' || $1 WHERE id = (SELECT id FROM articles ORDER BY random() LIMIT 1)`,
            [i],
          );
        }
      })();
      const seen = await walkForward(paginator(), sort);
      writing = false;
      await churn;

      expect(new Set(seen).size).toBe(seen.length); // nothing repeated
      const seenSet = new Set(seen);
      const missed = before.map((r) => r.id).filter((id) => !deleted.has(id) && !seenSet.has(id));
      expect(missed).toEqual([]);
      expect(deleted.size).toBeGreaterThan(0);
    },
  );

  it('walks backwards with before cursors to the same order, and orders NULLs as the largest value', async () => {
    const p = paginator();
    const sort = 'rank:asc,createdAt:desc';
    const forward = await walkForward(p, sort, '500');
    const { rows } = await writer.query(
      'SELECT id::text FROM articles ORDER BY rank ASC NULLS LAST, created_at DESC, id ASC',
    );
    expect(forward).toEqual(rows.map((r) => r.id));

    // From the last page back to the first.
    let page = await p.paginate(articles, p.parse({ sort, limit: '500' }));
    while (page.hasMore)
      page = await p.paginate(articles, p.parse({ sort, limit: '500', after: page.nextCursor! }));
    const backward: string[] = [...page.items.map((a) => a.id)];
    while (page.prevCursor) {
      page = await p.paginate(articles, p.parse({ sort, limit: '500', before: page.prevCursor }));
      backward.unshift(...page.items.map((a) => a.id));
    }
    expect(backward).toEqual(forward);
  });

  it.each(['0', '-1', '1e9', 'NaN', '', '1.5', ' 5'])('refuses limit=%j with a 400', (limit) => {
    expect(() => paginator().parse({ limit })).toThrow(BadRequestException);
  });

  it('clamps a huge plain limit to the maximum and uses the default without one', async () => {
    expect(paginator().parse({ limit: '1000000000' }).limit).toBe(500);
    expect(paginator().parse({}).limit).toBe(100);
    expect(() => paginator().parse({ limit: ['1', '2'] })).toThrow(BadRequestException);
  });

  it.each([
    'id;DROP TABLE articles',
    'nope:asc',
    '(select pg_sleep(5)):asc',
    'rank:sideways',
    'rank,rank',
    'body:asc',
    "rank:asc' OR '1'='1",
  ])('refuses sort=%j with a 400 and runs no SQL from it', async (sort) => {
    expect(() => paginator().parse({ sort })).toThrow(BadRequestException);
    const { rows } = await writer.query("SELECT to_regclass('articles') IS NOT NULL AS exists");
    expect(rows[0].exists).toBe(true);
  });

  it('refuses a cursor made for another sort, another endpoint, another secret, or altered', async () => {
    const p = paginator('articles', 'secret-1');
    const page = await p.paginate(articles, p.parse({ sort: 'rank:asc', limit: '3' }));
    const cursor = page.nextCursor!;
    const otherSort: SortField[] = [{ field: 'rank', direction: 'desc' }];
    const cases: [CursorPaginator<Article>, Record<string, unknown>][] = [
      [p, { after: cursor, sort: 'rank:desc' }],
      [paginator('other-endpoint', 'secret-1'), { after: cursor, sort: 'rank:asc' }],
      [paginator('articles', 'secret-2'), { after: cursor, sort: 'rank:asc' }],
      [p, { after: `x${cursor.slice(1)}`, sort: 'rank:asc' }],
      [p, { after: cursor.replace('.', '.A'), sort: 'rank:asc' }],
      [p, { after: 'not-a-cursor', sort: 'rank:asc' }],
    ];
    for (const [paginatorUnderTest, query] of cases) {
      await expect(
        paginatorUnderTest.paginate(articles, paginatorUnderTest.parse(query)),
      ).rejects.toThrow(BadRequestException);
    }
    expect(otherSort).toHaveLength(1);
    // And the genuine cursor works.
    const next = await p.paginate(
      articles,
      p.parse({ after: cursor, sort: 'rank:asc', limit: '3' }),
    );
    expect(next.items).toHaveLength(3);
  });
});
