/**
 * Child process of bench/latency.ts: the e2e fixture app (items feed, `@LongPoll` on
 * /runs/:run/changes, a handler that loads the changed rows with one query) on the polling module
 * with its in-memory index and the aggregator on. Records when each reader batch reached the bus,
 * the event-loop delay and CPU time, so the parent can tell where commit-to-client latency goes.
 *   env: DATABASE_URL (the `items` table must exist)
 */
import 'reflect-metadata';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ChangeBus } from '../../src/change-bus/change-bus.service';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { PollingEvents } from '../../src/http-polling/watch/polling-events.service';
import { ResponseAggregator } from '../../src/aggregation/response-aggregator.service';
import { HandlerRuns } from '../../test/fixtures/items-feed.controller';
import { startItemsApp } from '../../test/fixtures/items-app';
import { clock, serve } from './child';

setFlagsFromString('--expose-gc');
const fullGc = runInNewContext('gc') as () => void;

async function main(): Promise<void> {
  const items = await startItemsApp(process.env.DATABASE_URL!, {
    // All waiters come from one address: lift the per-client hold limit (default 16).
    http: { maxHeldPerClient: 100_000 },
    // Every waiter is one user (one bearer token): the app names the scope.
    aggregator: { scope: (req) => req.headers.authorization || null },
  });
  const bus = items.app.get(ChangeBus);
  const aggregator = items.app.get(ResponseAggregator);
  const runs = items.app.get(HandlerRuns);
  // SSE subscribers the server dropped (their connection held too much unsent).
  let dropped = 0;
  items.app.get(PollingEvents).events$.subscribe((event) => {
    if (event.type === 'dropped') dropped++;
  });

  // [time, head position] per reader batch, as the bus carried it.
  let notices: number[] = [];
  bus.notices$.subscribe((n) => {
    if (n.kind === 'changes') notices.push(clock(), n.position);
  });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let cpu = process.cpuUsage();
  let began = clock();
  let base = { runs: 0, aggregatorRuns: 0, joined: 0 };

  const ipc = serve(
    {
      /** The process's memory split (RSS, V8 heap, external, array buffers), in bytes. */
      memory() {
        return process.memoryUsage();
      },
      /** After a full GC: what is retained rather than garbage not yet collected. */
      gc() {
        fullGc();
        return process.memoryUsage();
      },
      /** A look at the server while a run goes on. */
      probe() {
        return {
          held: items.app.get(HeldRequests).size,
          handlerRuns: runs.count,
          aggregatorRuns: aggregator.runs,
          joined: aggregator.joined,
          head: notices[notices.length - 1],
          dropped,
        };
      },
      begin() {
        notices = [];
        loop.reset();
        loop.enable();
        cpu = process.cpuUsage();
        began = clock();
        base = { runs: runs.count, aggregatorRuns: aggregator.runs, joined: aggregator.joined };
        return {};
      },
      end() {
        loop.disable();
        const used = process.cpuUsage(cpu);
        return {
          notices: Float64Array.from(notices),
          cpuShare: (used.user + used.system) / 1000 / (clock() - began),
          loopDelayMs: {
            p50: loop.percentile(50) / 1e6,
            p99: loop.percentile(99) / 1e6,
            max: loop.max / 1e6,
          },
          handlerRuns: runs.count - base.runs,
          aggregatorRuns: aggregator.runs - base.aggregatorRuns,
          aggregatorJoined: aggregator.joined - base.joined,
        };
      },
    },
    () => items.close(),
  );
  const { port } = items.app.getHttpServer().address() as { port: number };
  ipc.ready({ url: `http://127.0.0.1:${port}` });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
