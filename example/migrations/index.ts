import { pollingMigrations } from '../../src';
import { ExampleTables1732360000000 } from './1732360000000-example-tables';

/** In order: the module's change log first, then the tables it tracks. */
export const exampleMigrations = [...pollingMigrations, ExampleTables1732360000000];
