import type { MigrationInterface, QueryRunner } from 'typeorm';
import { trackTable, untrackTable } from '../../src';

/** The example app's tables, tracked by the polling module (run after the change-log migration). */
export class ExampleTables1732360000000 implements MigrationInterface {
  name = 'ExampleTables1732360000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE messages (
        id bigserial PRIMARY KEY,
        channel text NOT NULL,
        author text NOT NULL,
        body text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX messages_channel_created ON messages (channel, created_at DESC, id);
      CREATE TABLE tasks (
        id bigserial PRIMARY KEY,
        owner text NOT NULL,
        input text NOT NULL,
        status text NOT NULL DEFAULT 'pending'
          CHECK (status IN ('pending', 'running', 'done', 'failed')),
        result text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX tasks_pending ON tasks (id) WHERE status = 'pending';
    `);
    await trackTable(q, 'messages', { key: 'id', partition: 'channel' });
    await trackTable(q, 'tasks', { key: 'id', partition: 'id' });
  }

  async down(q: QueryRunner): Promise<void> {
    await untrackTable(q, 'tasks');
    await untrackTable(q, 'messages');
    await q.query(`
      DROP TABLE tasks;
      DROP TABLE messages;
    `);
  }
}
