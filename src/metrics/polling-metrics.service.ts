import { Inject, Injectable, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import type * as PromClient from 'prom-client';
import { Subscription } from 'rxjs';
import { ResponseAggregator } from '../aggregation/response-aggregator.service';
import { ChangeBus } from '../change-bus/change-bus.service';
import { ChangeReader } from '../change-capture/change-reader.service';
import { HeldRequests } from '../http-polling/held-requests.service';
import { tableFeed } from '../http-polling/watch-http';
import {
  PollingEvents,
  type PollingEvent,
  type PollKind,
} from '../http-polling/watch/polling-events.service';
import type { RejectReason } from '../http-polling/watch/watch.errors';
import { loadOptionalPeer } from '../optional-peer';
import type { MetricsRegistry } from '../polling-options.interface';
import { InjectPollingOptions, POLLING_METRICS_ROUTE } from '../polling.tokens';
import { PollingConfigError, type ResolvedOptions } from '../resolve-options';

export type { PollKind, RejectReason };

const REJECT_STATUS: Record<RejectReason, number> = {
  client_held_limit: 429,
  poll_interval: 429,
  held_limit: 503,
  shutting_down: 503,
  index_unavailable: 503,
  bad_request: 400,
};

interface Instruments {
  registry: MetricsRegistry;
  responses: PromClient.Counter<'feed' | 'kind' | 'status'>;
  wakeups: PromClient.Counter<'feed' | 'reason'>;
  rejected: PromClient.Counter<'reason' | 'status'>;
  delay: PromClient.Histogram<string>;
  generations: PromClient.Counter<string>;
  dropped: PromClient.Counter<'feed'>;
}

/**
 * The module's Prometheus metrics (prom-client, an optional peer loaded only when
 * `metrics.enabled`). They observe: counters follow the events the hold core and its transports
 * emit (PollingEvents), and figures that already exist elsewhere (held requests, reader lag,
 * aggregator runs) are read at scrape time. When metrics are off nothing subscribes, so the hot
 * paths build no events.
 */
@Injectable()
export class PollingMetrics implements OnModuleInit, OnApplicationShutdown {
  private readonly m: Instruments | null;
  private subscription: Subscription | null = null;

  constructor(
    @InjectPollingOptions() private readonly options: ResolvedOptions,
    private readonly held: HeldRequests,
    private readonly reader: ChangeReader,
    private readonly aggregator: ResponseAggregator,
    private readonly bus: ChangeBus,
    private readonly events: PollingEvents,
    @Optional() @Inject(POLLING_METRICS_ROUTE) mountedRoute: string | null = null,
  ) {
    const { enabled, path } = options.metrics;
    this.m = enabled ? this.create() : null;
    if (enabled && path !== false && mountedRoute === null) {
      // forRootAsync: the options came after Nest had fixed the module's routes.
      throw new PollingConfigError(
        `metrics.path "${path}" is not served: PollingModule.forRootAsync cannot mount the ` +
          'metrics route (its options arrive after the routes are fixed). Set metrics: ' +
          "{ enabled: true, path: false } and add createMetricsController('metrics') to your " +
          "module's controllers",
      );
    }
  }

  get enabled(): boolean {
    return this.m !== null;
  }

  /** The registry the metrics live in (a prom-client Registry), null when metrics are off. */
  get registry(): MetricsRegistry | null {
    return this.m?.registry ?? null;
  }

  /** The exposition text and its content type, for the metrics route. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    if (!this.m) throw new Error('nestjs-polling: metrics are not enabled');
    return { contentType: this.m.registry.contentType, body: await this.m.registry.metrics() };
  }

  onModuleInit(): void {
    const m = this.m;
    if (!m) return;
    this.subscription = new Subscription();
    this.subscription.add(
      this.bus.notices$.subscribe((notice) => {
        if (notice.kind === 'wake-all' && notice.reason === 'generation') m.generations.inc();
      }),
    );
    this.subscription.add(this.events.events$.subscribe((event) => this.observe(m, event)));
  }

  /** Late, not at module destroy: shutdown answers held requests after that, and they count. */
  onApplicationShutdown(): void {
    this.subscription?.unsubscribe();
  }

  private observe(m: Instruments, event: PollingEvent): void {
    if (event.type === 'rejected') {
      m.rejected.inc({ reason: event.reason, status: String(REJECT_STATUS[event.reason]) });
    } else if (event.type === 'wake') {
      m.wakeups.inc({ feed: event.feed, reason: event.reason });
    } else if (event.type === 'dropped') {
      m.dropped.inc({ feed: event.feed });
    } else {
      const { feed, kind, status, committedAt } = event;
      m.responses.inc({ feed, kind, status: String(status) });
      if (status === 400) m.rejected.inc({ reason: 'bad_request', status: '400' });
      // Set only when a change woke the request: a 200 then delivered that change.
      if (status === 200 && committedAt !== undefined) {
        m.delay.observe(Math.max(0, Date.now() - committedAt) / 1000);
      }
    }
  }

  private create(): Instruments {
    const prom = loadOptionalPeer<typeof PromClient>('prom-client');
    if (!prom) {
      throw new PollingConfigError(
        'metrics.enabled needs the optional peer dependency prom-client (npm i prom-client@^15)',
      );
    }
    const { prefix, delayBuckets } = this.options.metrics;
    const registry = this.options.metrics.registry ?? new prom.Registry();
    const registers = [registry as unknown as PromClient.Registry];
    const name = (suffix: string) => {
      // Another app in this process may have registered the same names in a shared registry.
      if (registry.getSingleMetric(prefix + suffix)) registry.removeSingleMetric(prefix + suffix);
      return prefix + suffix;
    };
    const { held, reader, aggregator } = this;
    const feeds = this.options.tables.map((t) => t.feed);

    new prom.Gauge({
      name: name('held_requests'),
      help: 'Requests held right now in this process, by tracked feed (a batch poll counts under each of its feeds)',
      labelNames: ['feed'],
      registers,
      collect() {
        const counts = new Map<string, number>(feeds.map((f) => [f, 0]));
        for (const [feed, n] of held.countsByFeed()) {
          const table = tableFeed(feed);
          counts.set(table, (counts.get(table) ?? 0) + n);
        }
        for (const [feed, n] of counts) this.set({ feed }, n);
      },
    });
    new prom.Gauge({
      name: name('reader_leader'),
      help: '1 when this instance leads the change reader, else 0',
      registers,
      collect() {
        this.set(reader.role === 'leader' ? 1 : 0);
      },
    });
    new prom.Gauge({
      name: name('reader_live'),
      help: '1 when this instance serves current data (leader caught up, or follower of a built index)',
      registers,
      collect() {
        this.set(reader.live ? 1 : 0);
      },
    });
    new prom.Gauge({
      name: name('reader_held_back_rows'),
      help: 'Committed changes the reader cannot deliver yet: they wait behind an older open writing transaction (the commit horizon)',
      registers,
      collect() {
        this.set(reader.lag.heldBackRows);
      },
    });
    new prom.Gauge({
      name: name('reader_oldest_transaction_seconds'),
      help: 'Age of the oldest open writing transaction in the cluster (what holds the commit horizon)',
      registers,
      collect() {
        this.set(reader.lag.oldestOpenTransactionMs / 1000);
      },
    });
    new prom.Gauge({
      name: name('reader_stalled_seconds'),
      help: 'How long changes have been held back behind the commit horizon, 0 when none are',
      registers,
      collect() {
        const since = reader.lag.stalledSince;
        this.set(since === null ? 0 : Math.max(0, Date.now() - since) / 1000);
      },
    });
    const counterFrom = (suffix: string, help: string, read: () => number) => {
      let seen = 0;
      new prom.Counter({
        name: name(suffix),
        help,
        registers,
        collect() {
          const now = read();
          if (now > seen) this.inc(now - seen);
          seen = now;
        },
      });
    };
    counterFrom(
      'aggregator_runs_total',
      'Poll handler executions started through the response aggregator',
      () => aggregator.runs,
    );
    counterFrom(
      'aggregator_shared_total',
      "Poll responses served by another identical request's handler execution (in flight or lingering)",
      () => aggregator.joined,
    );
    return {
      registry,
      responses: new prom.Counter({
        name: name('responses_total'),
        help: 'Poll responses by tracked feed, kind (short, long, snapshot, batch) and status; 304 ratio = status 304 / kind short',
        labelNames: ['feed', 'kind', 'status'],
        registers,
      }),
      wakeups: new prom.Counter({
        name: name('wakeups_total'),
        help: 'Held requests that stopped waiting, by feed and reason (change, reset, timeout, shutdown, closed = client gone)',
        labelNames: ['feed', 'reason'],
        registers,
      }),
      rejected: new prom.Counter({
        name: name('rejected_total'),
        help: 'Requests refused before polling or holding, by reason and status',
        labelNames: ['reason', 'status'],
        registers,
      }),
      delay: new prom.Histogram({
        name: name('delivery_delay_seconds'),
        help: "From the change's commit (its writing transaction's start unless track_commit_timestamp is on) to the end of the response of a held request it woke",
        buckets: delayBuckets,
        registers,
      }),
      generations: new prom.Counter({
        name: name('index_generations_total'),
        help: 'Index generations started (first start, or a new one after a lost/wiped index)',
        registers,
      }),
      dropped: new prom.Counter({
        name: name('sse_dropped_total'),
        help: 'SSE subscribers dropped because their connection held more than http.sse.maxBufferedBytes unsent (a client that stopped reading); they resume with Last-Event-ID',
        labelNames: ['feed'],
        registers,
      }),
    };
  }
}
