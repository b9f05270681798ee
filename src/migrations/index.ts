import { PollingChangeLog1732350000000 } from './1732350000000-polling-change-log';

export { PollingChangeLog1732350000000 };

/** Pass to your DataSource: `migrations: [...pollingMigrations, ...yours]`. */
export const pollingMigrations = [PollingChangeLog1732350000000];
