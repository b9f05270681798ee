import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { ThrottledWarning } from '../logging/throttled-warning';
import type { ChangeBus, BusRelay } from './change-bus.service';
import type { ChangeNotice } from './change-notice.interface';

/** A failed publish is made good by a wake-all, tried again after 100 ms, doubling up to 5 s. */
const REPUBLISH_FIRST_MS = 100;
const REPUBLISH_MAX_MS = 5000;

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
  private republishTimer: NodeJS.Timeout | null = null;
  private republishMs = REPUBLISH_FIRST_MS;
  private closed = false;

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
    this.send(notice).catch((error: Error) => this.owe(error));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.republishTimer) clearTimeout(this.republishTimer);
    this.republishTimer = null;
    const subscriber = this.subscriber;
    this.subscriber = null;
    if (subscriber) await subscriber.quit().catch(() => subscriber.disconnect());
  }

  private send(notice: ChangeNotice): Promise<number> {
    const envelope: Envelope = { from: this.bus.instanceId, notice };
    return this.publisher.publish(this.channel, JSON.stringify(envelope));
  }

  /**
   * A notice did not go out: the other instances' waiters of its feeds would sleep until their
   * wait ends. Which feeds no longer matters once later notices went out, so the debt is paid
   * with one wake-all as soon as publishing works again.
   */
  private owe(error: Error): void {
    this.publishWarning.warn(`publish failed: ${error.message}; every instance is woken later`);
    if (this.republishTimer || this.closed) return;
    this.republishTimer = setTimeout(() => this.republish(), this.republishMs);
    this.republishTimer.unref();
  }

  private republish(): void {
    this.republishTimer = null;
    this.send({ kind: 'wake-all', reason: 'republish' }).then(
      () => (this.republishMs = REPUBLISH_FIRST_MS),
      (error: Error) => {
        this.republishMs = Math.min(this.republishMs * 2, REPUBLISH_MAX_MS);
        this.owe(error);
      },
    );
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
