import type { ServerResponse } from 'node:http';

/** One SSE event or comment, as FeedStream writes it. */
export type StreamEvent =
  { id: string; type?: 'reset' | 'error'; data: string } | { comment: string };

const oneLine = (text: string) => text.replace(/[\r\n]/g, ' ');

/** The event in the SSE wire format. `data` is JSON, which has no raw line breaks. */
export function formatEvent(event: StreamEvent): string {
  if ('comment' in event) return `: ${oneLine(event.comment)}\n\n`;
  const type = event.type ? `event: ${event.type}\n` : '';
  return `${type}id: ${oneLine(event.id)}\ndata: ${event.data}\n\n`;
}

/**
 * The event encoded once, to be written as is to every subscriber it is for: sockets take a
 * Buffer without converting it, and the queued bytes of many slow subscribers share its memory.
 */
export function encodeEvent(event: StreamEvent): Buffer {
  return Buffer.from(formatEvent(event), 'utf8');
}

/**
 * Resolves once the SSE headers are out (Nest's @Sse writer sends them one macrotask after it
 * subscribes) or the client left: events are written to the socket only after them.
 */
export async function headersOut(res: ServerResponse): Promise<void> {
  while (!res.headersSent && !res.destroyed && !res.writableEnded) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}
