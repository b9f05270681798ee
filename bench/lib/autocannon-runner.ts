/**
 * autocannon in a process of its own (child.ts), so the load generator never shares an event loop
 * with the app it measures: `run` {url, connections, duration (s), headers} answers with the
 * summary; runs are one at a time.
 */
import autocannon from 'autocannon';
import { serve } from './child';

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

let queue: Promise<unknown> = Promise.resolve();
serve({
  run(options) {
    const result = queue.then(() => run(options as unknown as autocannon.Options));
    queue = result.catch(() => undefined);
    return result;
  },
}).ready();
