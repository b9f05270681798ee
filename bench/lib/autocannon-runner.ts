/**
 * autocannon in a process of its own, so the load generator never shares an event loop with the
 * app it measures:
 *
 *   node -r ts-node/register/transpile-only bench/lib/autocannon-runner.ts
 *
 * Reads one JSON command per line on stdin, {id, url, connections, duration (s), headers}, runs it
 * and answers {id, result} (or {id, error}); runs are one at a time. Exits when stdin closes.
 */
import autocannon from 'autocannon';
import { onCommands, report } from './child';

export interface AutocannonSummary {
  /** Mean of the per-second request counts (autocannon's "Req/Sec avg"). */
  rps: number;
  requests: number;
  durationS: number;
  statusCodes: Record<string, number>;
  errors: number;
  timeouts: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  bytesPerSecond: number;
}

async function run(options: autocannon.Options): Promise<AutocannonSummary> {
  const result = await autocannon(options);
  return {
    rps: result.requests.average,
    requests: result.requests.total ?? 0,
    durationS: result.duration,
    statusCodes: Object.fromEntries(
      Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count]),
    ),
    errors: result.errors,
    timeouts: result.timeouts,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    bytesPerSecond: result.throughput.average,
  };
}

let queue = Promise.resolve();
onCommands((command) => {
  const { id, ...options } = command;
  queue = queue.then(() =>
    run(options as unknown as autocannon.Options).then(
      (result) => report({ id, result }),
      (error: Error) => report({ id, error: error.stack ?? error.message }),
    ),
  );
});
process.stdin.on('close', () => process.exit(0));
report({ event: 'ready' });
