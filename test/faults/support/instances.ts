import { scrape } from '../../support/prometheus-text';
import { waitFor } from '../../support/wait-for';
import type { ExampleProcess } from './example-process';

export interface ReaderHealth {
  status: number;
  role: string | null;
  state: string | null;
  heldBackRows: number;
}

/** The instance's /health answer, reduced to the change reader's part. */
export async function readerHealth(instance: ExampleProcess): Promise<ReaderHealth> {
  const response = await fetch(`${instance.url}/health`, { signal: AbortSignal.timeout(3000) });
  const body = (await response.json()) as {
    details?: { reader?: { role?: string; state?: string; heldBackRows?: number } };
  };
  const reader = body.details?.reader ?? {};
  return {
    status: response.status,
    role: reader.role ?? null,
    state: reader.state ?? null,
    heldBackRows: reader.heldBackRows ?? 0,
  };
}

/** Waits until exactly one running instance reports itself the leader, and returns it. */
export async function findLeader(
  instances: ExampleProcess[],
  timeoutMs = 15_000,
): Promise<ExampleProcess> {
  let leader: ExampleProcess | null = null;
  await waitFor(
    async () => {
      const running = instances.filter((i) => i.running);
      const roles = await Promise.all(
        running.map((i) =>
          readerHealth(i)
            .then((h) => h.role)
            .catch(() => null),
        ),
      );
      const leaders = running.filter((_, n) => roles[n] === 'leader');
      leader = leaders.length === 1 ? leaders[0] : null;
      return leader !== null;
    },
    { timeoutMs, intervalMs: 100, message: 'no single leader among the instances' },
  );
  return leader!;
}

/** Requests held right now by the instance (from its /metrics): one feed's, or summed over feeds. */
export async function heldRequests(instance: ExampleProcess, feed?: string): Promise<number> {
  const labels = feed === undefined ? undefined : { feed };
  return (await scrape(`${instance.url}/metrics`)).value('polling_held_requests', labels);
}
