// The migration classes ship inside the library (src/migrations) so installed apps can import
// them from 'nestjs-polling'; this folder holds the CLI data source for this repository.
export {
  pollingMigrations,
  PollingChangeLog1732350000000,
  PollingCaptureFunctions1764900000000,
} from '../src/migrations';
