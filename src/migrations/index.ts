import { PollingChangeLog1732350000000 } from './1732350000000-polling-change-log';
import { PollingCaptureFunctions1764900000000 } from './1764900000000-polling-capture-functions';

export { PollingChangeLog1732350000000, PollingCaptureFunctions1764900000000 };

/** Pass to your DataSource: `migrations: [...pollingMigrations, ...yours]`. */
export const pollingMigrations = [
  PollingChangeLog1732350000000,
  PollingCaptureFunctions1764900000000,
];
