import type { Provider, Type } from '@nestjs/common';
import type { TrackedTable } from '../../../src';
import { AppendVisible } from './append-visible';
import { ScratchFormat } from './scratch-format';
import { ScratchStreamsController } from './scratch-streams.controller';
import { SCRATCH_APPENDS, scratchTablesProvider } from './scratch-tables';

/** What the example adds for DURABLE_STREAMS_TEST_WRITES=1 (test only). */
export function scratchStreams(): {
  table: TrackedTable;
  controllers: Type<unknown>[];
  providers: Provider[];
} {
  return {
    table: { table: SCRATCH_APPENDS, partition: 'stream' },
    controllers: [ScratchStreamsController],
    providers: [scratchTablesProvider, AppendVisible, ScratchFormat],
  };
}
