import type { Redis } from 'ioredis';
import type { BusChannel, BusChannelListener } from './bus-channel';

/** PUBLISH/SUBSCRIBE on a single Redis server; the subscriber is a duplicate of the client. */
export class PlainBusChannel implements BusChannel {
  private subscriber: Redis | null = null;

  constructor(
    private readonly publisher: Redis,
    private readonly channel: string,
  ) {}

  async subscribe(listener: BusChannelListener): Promise<void> {
    const subscriber = this.publisher.duplicate();
    this.subscriber = subscriber;
    subscriber.on('error', (error: Error) => listener.warn(`subscriber: ${error.message}`));
    subscriber.on('message', (_channel: string, message: string) => listener.message(message));
    subscriber.on('close', () => listener.lost());
    let connectedOnce = false;
    subscriber.on('ready', () => {
      if (!connectedOnce) return;
      // Re-subscribe before waking, so a change published right after the wake is not missed.
      subscriber
        .subscribe(this.channel)
        .then(() => listener.resubscribed())
        .catch((error: Error) => listener.warn(`resubscribe failed: ${error.message}`));
    });
    await subscriber.subscribe(this.channel);
    connectedOnce = true;
  }

  publish(text: string): Promise<number> {
    return this.publisher.publish(this.channel, text);
  }

  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = null;
    if (subscriber) await subscriber.quit().catch(() => subscriber.disconnect());
  }
}
