import type { Cluster, Redis } from 'ioredis';
import type { BusChannel, BusChannelListener } from './bus-channel';

/** After a lost subscription, look for the slot's master again after 100 ms, doubling up to 2 s. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 2000;

/**
 * SPUBLISH/SSUBSCRIBE on a Redis Cluster. The channel carries the index's hash tag, so it lives
 * on the master that holds the index; a message goes to that shard only, not over the cluster
 * bus to every node. The subscriber is one connection to that master, never reconnected to the
 * same address: when it ends or errs (a crash, a failover, the slot moving, which the server
 * signals with an unsolicited SUNSUBSCRIBE), the slot's master is looked up again, subscribed
 * to, and only then are the local waiters woken to re-check what the gap may have hidden.
 */
export class ShardedBusChannel implements BusChannel {
  private listener: BusChannelListener | null = null;
  private subscriber: Redis | null = null;
  private slot: number | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_FIRST_MS;
  private closed = false;

  constructor(
    private readonly cluster: Cluster,
    private readonly channel: string,
  ) {}

  async subscribe(listener: BusChannelListener): Promise<void> {
    this.listener = listener;
    await this.connect();
  }

  publish(text: string): Promise<unknown> {
    return this.cluster.spublish(this.channel, text);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const subscriber = this.subscriber;
    this.subscriber = null;
    if (subscriber) await subscriber.quit().catch(() => subscriber.disconnect());
  }

  private async connect(): Promise<void> {
    const master = await this.master();
    const subscriber = master.duplicate({
      lazyConnect: true,
      retryStrategy: () => null, // the slot may have another master by then: look it up again
      enableOfflineQueue: false,
    });
    subscriber.on('error', (error: Error) => {
      this.listener?.warn(`sharded subscriber: ${error.message}`);
      subscriber.disconnect();
    });
    subscriber.on('smessage', (_channel: string, message: string) =>
      this.listener?.message(message),
    );
    subscriber.once('end', () => this.lost(subscriber));
    try {
      await subscriber.connect();
      await subscriber.ssubscribe(this.channel);
    } catch (error) {
      subscriber.removeAllListeners('end');
      subscriber.disconnect();
      throw error;
    }
    if (this.closed) {
      subscriber.disconnect();
      return;
    }
    this.subscriber = subscriber;
  }

  private lost(subscriber: Redis): void {
    if (this.closed || subscriber !== this.subscriber) return;
    this.subscriber = null;
    this.listener?.lost();
    this.retryLater();
  }

  private retryLater(): void {
    if (this.closed || this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect().then(
        () => {
          this.retryMs = RETRY_FIRST_MS;
          if (!this.closed) this.listener?.resubscribed();
        },
        (error: Error) => {
          this.listener?.warn(`sharded resubscribe failed: ${error.message}`);
          this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
          this.retryLater();
        },
      );
    }, this.retryMs);
    this.retryTimer.unref();
  }

  /** The master that serves the channel's slot now, from a fresh slot map. */
  private async master(): Promise<Redis> {
    this.slot ??= Number(await this.cluster.cluster('KEYSLOT', this.channel));
    await new Promise<void>((resolve, reject) =>
      this.cluster.refreshSlotsCache((error) => (error ? reject(error) : resolve())),
    );
    const nodeKey = this.cluster.slots[this.slot]?.[0];
    const master = this.cluster
      .nodes('master')
      .find((node) => `${node.options.host}:${node.options.port}` === nodeKey);
    if (!master) throw new Error(`no master serves slot ${this.slot} of ${this.channel}`);
    return master;
  }
}
