import { Logger, type Provider } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { EXAMPLE_CONFIG, type ExampleConfig } from './config';
import { Message } from './messages/message.entity';
import { exampleMigrations } from './migrations';
import { Task } from './tasks/task.entity';

/** One lock for everyone running migrations at start, so two replicas never race. */
const MIGRATION_LOCK = 'nestjs-polling-example:migrations';

export function exampleDataSource(url: string): DataSource {
  return new DataSource({
    type: 'postgres',
    url,
    // A request waits at most this long for a connection to a database that does not answer.
    connectTimeoutMS: 5_000,
    entities: [Message, Task],
    migrations: exampleMigrations,
  });
}

/** The app's DataSource; with MIGRATE_ON_START it applies the migrations before anything serves. */
export const dataSourceProvider: Provider = {
  provide: DataSource,
  inject: [EXAMPLE_CONFIG],
  useFactory: async (config: ExampleConfig) => {
    const dataSource = await exampleDataSource(config.databaseUrl).initialize();
    if (config.migrateOnStart) {
      const runner = dataSource.createQueryRunner();
      try {
        await runner.query('SELECT pg_advisory_lock(hashtext($1))', [MIGRATION_LOCK]);
        const applied = await dataSource.runMigrations({ transaction: 'each' });
        new Logger('Migrations').log(`applied ${applied.length} migration(s)`);
      } finally {
        await runner
          .query('SELECT pg_advisory_unlock(hashtext($1))', [MIGRATION_LOCK])
          .catch(() => undefined);
        await runner.release();
      }
    }
    return dataSource;
  },
};
