import { Client, type ClientConfig } from 'pg';
import { describePostgres } from './postgres-config';
import { PollingConfigError } from '../resolve-options';
import type { WakeSignal } from './wake-signal';

/**
 * The reader's dedicated connection: it holds the leader lock, LISTENs, and runs every read.
 * A socket error, a server-side termination or a statement timeout marks it broken and wakes the
 * reader, which then drops it and connects again (LISTEN first, then catch up).
 */
export class ReaderConnection {
  readonly client: Client;
  private brokenBy: Error | null = null;

  private constructor(client: Client) {
    this.client = client;
  }

  /** `stopping`: settles when the app stops; a connect still under way is then given up at once. */
  static async open(
    config: ClientConfig,
    queryTimeoutMs: number,
    signal: WakeSignal,
    stopping?: Promise<void>,
  ) {
    const client = new Client({
      ...config,
      keepAlive: true,
      query_timeout: queryTimeoutMs,
      connectionTimeoutMillis: config.connectionTimeoutMillis ?? queryTimeoutMs,
      application_name: 'nestjs-polling reader',
    });
    const connection = new ReaderConnection(client);
    client.on('notification', () => signal.wake());
    client.on('error', (error) => {
      connection.brokenBy = error;
      signal.wake();
    });
    client.on('end', () => {
      connection.brokenBy ??= new Error('connection ended');
      signal.wake();
    });
    try {
      // pg's connect() does not settle when its socket is destroyed mid-handshake, so a stop
      // would otherwise wait out the connect timeout of a server that does not answer.
      const stopped = stopping?.then(() => {
        throw new Error('stopped while connecting');
      });
      stopped?.catch(() => undefined);
      const setup = (async () => {
        await client.connect();
        // Let the server notice a vanished reader within ~25 s, so its leader lock is released.
        await client.query(
          'SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3',
        );
      })();
      setup.catch(() => undefined); // given up when stopped: it may still fail later
      await Promise.race([setup, ...(stopped ? [stopped] : [])]);
    } catch (error) {
      // Not awaited: on a socket that does not answer, end() would wait for it.
      connection.close();
      throw new PollingConfigError(
        `cannot connect to Postgres at ${describePostgres(config)}: ${(error as Error).message}`,
      );
    }
    return connection;
  }

  /**
   * Ends the server session of an earlier connection of ours that went half-open: until the server
   * notices, that session would keep the leader lock.
   */
  async terminateOwnSession(pid: number): Promise<void> {
    await this.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE pid = $1 AND application_name = 'nestjs-polling reader'`,
      [pid],
    );
  }

  get broken(): Error | null {
    return this.brokenBy;
  }

  async query<R extends Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]> {
    if (this.brokenBy) throw this.brokenBy;
    try {
      return (await this.client.query(sql, params)).rows as R[];
    } catch (error) {
      // A client-side timeout leaves the protocol state unknown: never reuse the connection.
      if ((error as Error).message?.includes('timeout')) this.brokenBy = error as Error;
      throw error;
    }
  }

  /** Closes without waiting on a socket that may be half-open. */
  close(): void {
    this.brokenBy ??= new Error('closed');
    const stream = (this.client as unknown as { connection?: { stream?: { destroy(): void } } })
      .connection?.stream;
    this.client.end().catch(() => undefined);
    stream?.destroy();
  }
}
