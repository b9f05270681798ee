import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { RedisBusRelay } from './change-bus/redis-bus-relay';
import { InjectChangeIndex, type ChangeIndex } from './change-index/change-index.interface';
import type { RedisHandle } from './change-index/redis-connection';
import { InjectPollingRedis } from './polling.tokens';

/** Closes what the module opened, after the reader has stopped (beforeApplicationShutdown). */
@Injectable()
export class PollingConnections implements OnApplicationShutdown {
  constructor(
    @InjectPollingRedis() private readonly redis: RedisHandle | null,
    @InjectChangeIndex() private readonly index: ChangeIndex,
    @Inject(RedisBusRelay) private readonly relay: RedisBusRelay | null,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.relay?.close();
    await this.index.close();
    if (this.redis?.owned)
      await this.redis.client.quit().catch(() => this.redis?.client.disconnect());
  }
}
