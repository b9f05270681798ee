import { writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { writeHeapSnapshot } from 'node:v8';

/**
 * What the held-polls servers report about themselves over IPC: event-loop lag and memory.
 *
 * Lag: perf_hooks.monitorEventLoopDelay samples with a 10 ms timer and records the whole interval
 * between two firings, so every sample is ≥ 10 ms on an idle loop; the lag is that minus 10 ms.
 */
export const LAG_RESOLUTION_MS = 10;

const histogram = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
histogram.enable();

export interface LagReport {
  p50: number;
  p99: number;
  max: number;
  mean: number;
  samples: number;
}

const lag = (ns: number) => Math.max(0, ns / 1e6 - LAG_RESOLUTION_MS);

/**
 * The server's open connections: their count (tells a held count that leaks from sockets that
 * stayed open) and `disconnect`, which closes them all from the server's side. The bench releases
 * held polls that way: the library sees each response close as when a client goes away, and the
 * TIME_WAIT entries stay on the server's side instead of blocking the clients' source ports.
 */
export function trackConnections(server: Server) {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return {
    count: () => sockets.size,
    disconnect: () => {
      const closed = sockets.size;
      for (const socket of sockets) socket.destroy();
      return { closed };
    },
  };
}

let session: Session | null = null;

function post<T>(method: string): Promise<T> {
  return new Promise((resolve, reject) =>
    session!.post(method, (error, result) => (error ? reject(error) : resolve(result as T))),
  );
}

export const probes = {
  lagReset: () => histogram.reset(),
  lagReport: (): LagReport => ({
    p50: lag(histogram.percentile(50)),
    p99: lag(histogram.percentile(99)),
    max: lag(histogram.max),
    mean: lag(histogram.mean),
    samples: histogram.count,
  }),
  /**
   * process.memoryUsage() now, and after full GCs (with --expose-gc) and `settleMs` for V8 to hand
   * freed pages back to the OS (it does that on a background thread, after the GC).
   */
  async memory(args: { gc?: boolean; settleMs?: number }) {
    const before = process.memoryUsage();
    const gc = (globalThis as { gc?: () => void }).gc;
    if (!args.gc || !gc) return { before, after: before, gc: false };
    gc();
    gc();
    await new Promise((resolve) => setTimeout(resolve, args.settleMs ?? 0));
    gc();
    return { before, after: process.memoryUsage(), gc: true };
  },
  /** Diagnostics (BENCH_HELD_PROFILE_DIR): a CPU profile of a stretch of the run. */
  async profileStart() {
    session = new Session();
    session.connect();
    await post('Profiler.enable');
    await post('Profiler.start');
  },
  async profileStop(args: { file: string }) {
    const { profile } = await post<{ profile: unknown }>('Profiler.stop');
    session?.disconnect();
    session = null;
    writeFileSync(args.file, JSON.stringify(profile));
    return { file: args.file };
  },
  heapSnapshot: (args: { file: string }) => ({ file: writeHeapSnapshot(args.file) }),
};
