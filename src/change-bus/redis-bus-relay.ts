import { Logger } from '@nestjs/common';
import { ThrottledWarning } from '../logging/throttled-warning';
import type { BusChannel } from './bus-channel';
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
 * Links the ChangeBus of every instance through a Redis pub/sub channel (plain, or sharded on a
 * cluster). Pub/sub is at-most-once: after the channel subscribes again, every local waiter is
 * woken to re-check its cursor against the index.
 */
export class RedisBusRelay implements BusRelay {
  private readonly logger = new Logger('RedisBusRelay');
  // While Redis is away these fire per reconnect attempt and per change batch: one line per 10 s.
  private readonly subscriberWarning = new ThrottledWarning(this.logger);
  private readonly publishWarning = new ThrottledWarning(this.logger);
  private republishTimer: NodeJS.Timeout | null = null;
  private republishMs = REPUBLISH_FIRST_MS;
  private closed = false;

  constructor(
    private readonly channel: BusChannel,
    private readonly bus: ChangeBus,
  ) {}

  async start(): Promise<void> {
    await this.channel.subscribe({
      message: (text) => this.receive(text),
      resubscribed: () => {
        // Linked again before the wake-all, which also drops what was cached before the gap.
        this.bus.setLinked(true);
        this.bus.deliver({ kind: 'wake-all', reason: 'reconnect' });
      },
      lost: () => this.bus.setLinked(false),
      warn: (text) => this.subscriberWarning.warn(text),
    });
    this.bus.attachRelay(this);
  }

  publish(notice: ChangeNotice): void {
    this.send(notice).catch((error: Error) => this.owe(error));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.republishTimer) clearTimeout(this.republishTimer);
    this.republishTimer = null;
    await this.channel.close();
  }

  private send(notice: ChangeNotice): Promise<unknown> {
    const envelope: Envelope = { from: this.bus.instanceId, notice };
    return this.channel.publish(JSON.stringify(envelope));
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
