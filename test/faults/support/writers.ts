import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'pg';

export interface AckedWrite {
  id: string;
  channel: string;
  /** The fault running when the commit was acknowledged ('steady' between faults). */
  phase: string;
}

/**
 * Writers that keep committing messages straight to PostgreSQL while faults happen: single
 * inserts, transactions across two channels, and transactions that roll back. Every acknowledged
 * commit is recorded with the phase it happened in; a commit whose answer was lost (connection
 * killed mid-commit) is settled later from the table itself.
 */
export class Writers {
  readonly acked: AckedWrite[] = [];
  readonly rolledBack = new Set<string>();
  errors = 0;
  phase = 'steady';
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly pool: Pool;
  private readonly lastByChannel = new Map<string, string>();

  constructor(
    databaseUrl: string,
    readonly channels: string[],
    private readonly options: { writers: number; pauseMs: number },
  ) {
    this.pool = new Pool({ connectionString: databaseUrl, max: options.writers + 2 });
    // Connections die with the faults (PostgreSQL restarts): an idle one reports to the pool, a
    // checked-out one between two statements to itself; the next statement fails and is retried.
    this.pool.on('error', () => undefined);
    this.pool.on('connect', (client) => client.on('error', () => undefined));
  }

  start(): void {
    this.running = true;
    for (let w = 0; w < this.options.writers; w++) this.loops.push(this.loop(w));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }

  async close(): Promise<void> {
    await this.stop();
    await this.pool.end();
  }

  /** The newest acknowledged message per channel: what followers must reach. */
  lastAcked(): Map<string, string> {
    return new Map(this.lastByChannel);
  }

  /** One more committed message in `channel`, now; resolves with its id. */
  async writeOne(channel: string, author = 'fault-writer'): Promise<string> {
    const { rows } = await this.pool.query<{ id: string }>(
      `INSERT INTO messages (channel, author, body) VALUES ($1, $2, 'one') RETURNING id`,
      [channel, author],
    );
    this.recordCommitted(rows[0].id, channel);
    return rows[0].id;
  }

  /** A commit made outside the writer loops (a fault's own transaction). */
  recordCommitted(id: string, channel: string): void {
    this.acked.push({ id, channel, phase: this.phase });
    const last = this.lastByChannel.get(channel);
    if (last === undefined || BigInt(id) > BigInt(last)) this.lastByChannel.set(channel, id);
  }

  private pick(): string {
    return this.channels[Math.floor(Math.random() * this.channels.length)];
  }

  private async loop(writer: number): Promise<void> {
    let n = 0;
    while (this.running) {
      try {
        const kind = n++ % 10;
        if (kind === 7) await this.transactionAcrossChannels(writer);
        else if (kind === 9) await this.rollback(writer);
        else await this.writeOne(this.pick(), `writer-${writer}`);
      } catch {
        this.errors++;
        await sleep(50); // a fault is under way: try again shortly on a fresh connection
      }
      await sleep(this.options.pauseMs);
    }
  }

  private async transactionAcrossChannels(writer: number): Promise<void> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const written: [string, string][] = [];
      for (const channel of [this.pick(), this.pick()]) {
        const { rows } = await client.query<{ id: string }>(
          `INSERT INTO messages (channel, author, body) VALUES ($1, $2, 'tx') RETURNING id`,
          [channel, `writer-${writer}`],
        );
        written.push([rows[0].id, channel]);
      }
      await client.query('COMMIT');
      for (const [id, channel] of written) this.recordCommitted(id, channel);
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  private async rollback(writer: number): Promise<void> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ id: string }>(
        `INSERT INTO messages (channel, author, body) VALUES ($1, $2, 'rolled back') RETURNING id`,
        [this.pick(), `writer-${writer}`],
      );
      await client.query('ROLLBACK');
      this.rolledBack.add(rows[0].id);
    } catch (error) {
      broken = true;
      throw error;
    } finally {
      client.release(broken);
    }
  }
}
