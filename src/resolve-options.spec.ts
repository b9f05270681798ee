import { thrownBy } from '../test/support/thrown';
import { HTTP_DEFAULTS, READER_DEFAULTS } from './polling.constants';
import type { PollingModuleOptions } from './polling-options.interface';
import { PollingConfigError } from './polling-config.error';
import { resolveOptions } from './resolve-options';

const postgres = { url: 'postgres://localhost/app' };
const minimal = (more: Partial<PollingModuleOptions> = {}): PollingModuleOptions => ({
  postgres,
  tables: [{ table: 'todos' }],
  ...more,
});

/** The message of the error forRoot() fails the app's start with. */
const startupError = (options: unknown) =>
  thrownBy(() => resolveOptions(options as PollingModuleOptions), PollingConfigError).message;

describe('resolveOptions: defaults', () => {
  it('fills every default from a postgres connection and one table', () => {
    const resolved = resolveOptions(minimal());
    expect(resolved.tables).toEqual([
      { table: 'todos', key: 'id', partition: null, feed: 'todos' },
    ]);
    expect(resolved).toMatchObject({
      postgres,
      redis: undefined,
      retention: { maxAgeMs: 24 * 60 * 60 * 1000, maxRows: null },
      keyPrefix: 'polling:',
      schema: 'public',
      installSchema: false,
      reader: READER_DEFAULTS,
      http: { ...HTTP_DEFAULTS, clientKey: undefined },
      aggregator: { enabled: true, lingerMs: 250, maxEntries: 10_000 },
      metrics: { enabled: false, path: '/metrics', prefix: 'polling_' },
      health: { horizonStallMs: 60_000, timeoutMs: 2000 },
    });
    expect(resolved.http.defaultWaitS).toBe(25);
    expect(resolved.http.maxWaitS).toBe(55);
  });

  it('names a feed after its table without the schema, and keeps key, partition and feed', () => {
    const { tables } = resolveOptions(
      minimal({
        tables: [
          { table: 'crm.contacts' },
          { table: 'messages', key: 'uuid', partition: 'room_id', feed: 'chat-messages' },
        ],
      }),
    );
    expect(tables).toEqual([
      { table: 'crm.contacts', key: 'id', partition: null, feed: 'contacts' },
      { table: 'messages', key: 'uuid', partition: 'room_id', feed: 'chat-messages' },
    ]);
  });

  it('keeps a default when an option is present but undefined (e.g. from an unset env var)', () => {
    const resolved = resolveOptions(
      minimal({
        http: { cursorSecret: undefined, maxWaitS: 30 },
        reader: { batchSize: undefined },
      }),
    );
    expect(resolved.http.cursorSecret).toBe(HTTP_DEFAULTS.cursorSecret);
    expect(resolved.http.maxWaitS).toBe(30);
    expect(resolved.reader.batchSize).toBe(READER_DEFAULTS.batchSize);
  });

  it('takes the boundaries: 0 s waits, retention by rows only', () => {
    const resolved = resolveOptions(
      minimal({ http: { maxWaitS: 0, defaultWaitS: 0 }, retention: { maxRows: 1 } }),
    );
    expect(resolved.http).toMatchObject({ maxWaitS: 0, defaultWaitS: 0 });
    expect(resolved.retention).toEqual({ maxAgeMs: null, maxRows: 1 });
  });
});

describe('resolveOptions: mistakes fail the start with a PollingConfigError that says what', () => {
  it('no postgres, no tables', () => {
    expect(startupError(undefined)).toBe('nestjs-polling: postgres connection is required');
    expect(startupError({ tables: [{ table: 't' }] })).toMatch(/postgres connection is required/);
    expect(startupError({ postgres })).toMatch(/tables must name at least one table/);
    expect(startupError({ postgres, tables: [] })).toMatch(/tables must name at least one table/);
  });

  it('table, column and feed names that are not plain identifiers, and a feed named twice', () => {
    const tables = (...t: unknown[]) => minimal({ tables: t as PollingModuleOptions['tables'] });
    expect(startupError(tables({ table: 'todos; DROP' }))).toMatch(/"todos; DROP" is not a plain/);
    expect(startupError(tables({ table: 'a.b.c' }))).toMatch(/"a.b.c" is not a plain/);
    expect(startupError(tables(null))).toMatch(/"undefined" is not a plain/);
    expect(startupError(tables({ table: 't', key: 'id"' }))).toMatch(/key column "id"" of t/);
    expect(startupError(tables({ table: 't', partition: 'a b' }))).toMatch(
      /partition column "a b"/,
    );
    expect(startupError(tables({ table: 't', feed: '-t' }))).toMatch(/feed name "-t" is invalid/);
    expect(startupError(tables({ table: 'a.t' }, { table: 'b.t' }))).toMatch(
      /feed "t" is configured twice/,
    );
  });

  it('a schema that is not a lower-case identifier, said once', () => {
    expect(startupError(minimal({ schema: 'Live' }))).toBe(
      'nestjs-polling: schema name "Live" is invalid; use lower-case letters, digits and _',
    );
  });

  it('keyPrefix and retention', () => {
    expect(startupError(minimal({ keyPrefix: '' }))).toMatch(/keyPrefix must be a non-empty/);
    expect(startupError(minimal({ keyPrefix: 'k'.repeat(201) }))).toMatch(/at most 200/);
    expect(startupError(minimal({ retention: {} }))).toMatch(/retention needs maxAgeMs and\/or/);
    expect(startupError(minimal({ retention: { maxAgeMs: 0 } }))).toBe(
      'nestjs-polling: retention.maxAgeMs must be an integer between 1 and 9007199254740991, got 0',
    );
  });

  it('redis.cluster: start-up nodes, and a key prefix the hash tag can follow', () => {
    const node = { host: '127.0.0.1', port: 7000 };
    expect(startupError(minimal({ redis: { cluster: [] } }))).toMatch(
      /redis.cluster must be a non-empty array of \{ host, port \}/,
    );
    expect(startupError(minimal({ redis: { cluster: [{ host: 'a' }] } as never }))).toMatch(
      /host, port/,
    );
    expect(startupError(minimal({ keyPrefix: 'app{1}:', redis: { cluster: [node] } }))).toBe(
      'nestjs-polling: keyPrefix must not contain { or } with redis.cluster',
    );
    expect(() => resolveOptions(minimal({ redis: { cluster: [node] } }))).not.toThrow();
  });

  it('waits: out of range, fractional, or a default longer than the maximum, with the range allowed', () => {
    expect(startupError(minimal({ http: { maxWaitS: -1 } }))).toBe(
      'nestjs-polling: http.maxWaitS must be an integer between 0 and 3600, got -1',
    );
    expect(startupError(minimal({ http: { maxWaitS: 3601 } }))).toMatch(/between 0 and 3600/);
    expect(startupError(minimal({ http: { maxWaitS: 2.5 } }))).toMatch(/got 2.5$/);
    expect(startupError(minimal({ http: { defaultWaitS: 60 } }))).toBe(
      'nestjs-polling: http.defaultWaitS must be an integer between 0 and 55, got 60',
    );
  });

  it('http.sse.maxBufferedBytes: 1 MiB by default, an integer of 1 KiB to 1 GiB', () => {
    expect(resolveOptions(minimal()).http.sse).toEqual({ maxBufferedBytes: 1024 * 1024 });
    expect(resolveOptions(minimal({ http: { sse: {} } })).http.sse.maxBufferedBytes).toBe(1048576);
    const set = resolveOptions(minimal({ http: { sse: { maxBufferedBytes: 4096 } } }));
    expect(set.http.sse.maxBufferedBytes).toBe(4096);
    for (const maxBufferedBytes of [0, 1023, 1.5, 2 ** 30 + 1, '1mb']) {
      expect(
        startupError(minimal({ http: { sse: { maxBufferedBytes: maxBufferedBytes as never } } })),
      ).toMatch(/http.sse.maxBufferedBytes must be an integer between 1024 and 1073741824/);
    }
    expect(startupError(minimal({ http: { sse: null as never } }))).toMatch(
      /http.sse must be an object/,
    );
  });

  it('poll intervals whose maximum is below their minimum', () => {
    expect(startupError(minimal({ http: { pollIntervalS: { min: 5, max: 2 } } }))).toBe(
      'nestjs-polling: http.pollIntervalS.max must be an integer between 5 and 3600, got 2',
    );
    expect(startupError(minimal({ http: { pollIntervalS: { min: 0, max: 2 } } }))).toMatch(
      /http.pollIntervalS.min must be an integer between 1 and 3600, got 0/,
    );
  });

  it('other http, reader, aggregator, metrics and health settings', () => {
    expect(startupError(minimal({ http: { cursorSecret: '' } }))).toMatch(
      /cursorSecret must be a non-empty/,
    );
    expect(startupError(minimal({ http: { clientKey: 'ip' as never } }))).toMatch(
      /clientKey must be a function/,
    );
    expect(startupError(minimal({ http: { maxHeldPerClient: 0 } }))).toMatch(
      /http.maxHeldPerClient/,
    );
    expect(startupError(minimal({ reader: { backstopMs: 0 } }))).toMatch(/reader.backstopMs/);
    expect(startupError(minimal({ reader: { batchSize: 100_001 } }))).toMatch(/reader.batchSize/);
    expect(startupError(minimal({ aggregator: { scope: 'user' as never } }))).toMatch(
      /aggregator.scope must be a function/,
    );
    expect(startupError(minimal({ aggregator: { lingerMs: -1 } }))).toMatch(/aggregator.lingerMs/);
    expect(startupError(minimal({ metrics: { path: 'has space' } }))).toMatch(
      /metrics.path must be a plain route path/,
    );
    expect(startupError(minimal({ metrics: { prefix: '1x' } }))).toMatch(/metrics.prefix "1x"/);
    for (const delayBuckets of [[], [0.1, 0.1], [1, 0.5], [0, 1], [Infinity]]) {
      expect(startupError(minimal({ metrics: { delayBuckets } }))).toMatch(
        /delayBuckets must be increasing/,
      );
    }
    expect(startupError(minimal({ metrics: { registry: {} as never } }))).toMatch(
      /metrics.registry must be a prom-client/,
    );
    expect(startupError(minimal({ health: { timeoutMs: 0 } }))).toMatch(/health.timeoutMs/);
  });
});
