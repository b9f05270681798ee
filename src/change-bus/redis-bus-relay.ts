import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { ThrottledWarning } from '../logging/throttled-warning';
import type { ChangeBus, BusRelay } from './change-bus.service';
import type { ChangeNotice } from './change-notice.interface';

interface Envelope {
  from: string;
  notice: ChangeNotice;
}

/**
 * Links the ChangeBus of every instance through Redis pub/sub. Pub/sub is at-most-once: after the
 * subscriber reconnects, every local waiter is woken to re-check its cursor against the index.
 */
export class RedisBusRelay implements BusRelay {
  private readonly logger = new Logger('RedisBusRelay');
  // While Redis is away these fire per reconnect attempt and per change batch: one line per 10 s.
  private readonly subscriberWarning = new ThrottledWarning(this.logger);
  private readonly publishWarning = new ThrottledWarning(this.logger);
  private subscriber: Redis | null = null;

  constructor(
    private readonly publisher: Redis,
    private readonly channel: string,
    private readonly bus: ChangeBus,
  ) {}

  async start(): Promise<void> {
    const subscriber = this.publisher.duplicate();
    this.subscriber = subscriber;
    subscriber.on('error', (error: Error) =>
      this.subscriberWarning.warn(`subscriber: ${error.message}`),
    );
    subscriber.on('message', (_channel: string, message: string) => this.receive(message));
    let connectedOnce = false;
    subscriber.on('ready', () => {
      if (!connectedOnce) return;
      // Re-subscribe before waking, so a change published right after the wake is not missed.
      subscriber
        .subscribe(this.channel)
        .then(() => this.bus.deliver({ kind: 'wake-all', reason: 'reconnect' }))
        .catch((error: Error) => this.logger.warn(`resubscribe failed: ${error.message}`));
    });
    await subscriber.subscribe(this.channel);
    connectedOnce = true;
    this.bus.attachRelay(this);
  }

  publish(notice: ChangeNotice): void {
    const envelope: Envelope = { from: this.bus.instanceId, notice };
    this.publisher
      .publish(this.channel, JSON.stringify(envelope))
      .catch((error: Error) => this.publishWarning.warn(`publish failed: ${error.message}`));
  }

  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = null;
    if (subscriber) await subscriber.quit().catch(() => subscriber.disconnect());
  }

  private receive(message: string): void {
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message) as Envelope;
    } catch {
      this.logger.warn('ignored a malformed bus message');
      return;
    }
    if (envelope.from !== this.bus.instanceId && envelope.notice) this.bus.deliver(envelope.notice);
  }
}
