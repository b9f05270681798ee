import { StreamableFile } from '@nestjs/common';
/** Anything headers can be set on: an HttpReply, or a platform's own response in a route. */
interface HeaderTarget {
  setHeader(name: string, value: string): unknown;
}
import type { StreamBatch } from './durable-stream.metadata';

/** PROTOCOL.md §12.7, on every response of a stream route (errors included). */
export function setSecurityHeaders(res: HeaderTarget): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
}

/** Where a read ends, as PROTOCOL.md §5.6/§5.7 headers. */
export function setReadHeaders(
  res: HeaderTarget,
  nextOffset: string,
  upToDate: boolean,
  cursor: string | null,
): void {
  res.setHeader('Stream-Next-Offset', nextOffset);
  if (upToDate) res.setHeader('Stream-Up-To-Date', 'true');
  if (cursor !== null) res.setHeader('Stream-Cursor', cursor);
}

export const isJsonType = (contentType: string) =>
  /^application\/json\s*(;|$)/i.test(contentType.trim());

/** SSE carries text natively for `text/*` and JSON; anything else goes base64 (§5.8). */
export const isTextType = (contentType: string) =>
  isJsonType(contentType) || /^text\//i.test(contentType.trim());

/**
 * A catch-up or long-poll body: the JSON array of the messages, or the bytes. As a StreamableFile
 * so Nest sends the bytes under the stream's own Content-Type (a string would get a charset added,
 * a Buffer would go out as JSON).
 */
export function batchBody(batch: StreamBatch): StreamableFile {
  const bytes = 'json' in batch ? Buffer.from(JSON.stringify(batch.json)) : batch.bytes;
  return new StreamableFile(bytes, { length: bytes.length });
}

export function isEmpty(batch: StreamBatch): boolean {
  return 'json' in batch ? batch.json.length === 0 : batch.bytes.length === 0;
}

/** `event: data` with the batch: JSON on one line, text line by line, other bytes as base64. */
export function dataEvent(batch: StreamBatch, base64: boolean): string {
  const text =
    'json' in batch
      ? JSON.stringify(batch.json)
      : base64
        ? batch.bytes.toString('base64')
        : batch.bytes.toString('utf8');
  // Every line of the payload gets its own `data:` field: a CR or LF in it can never end the
  // event or start another one (the client joins the lines back with LF).
  const lines = text.split(/\r\n|\r|\n/).map((line) => `data:${line}\n`);
  return `event: data\n${lines.join('')}\n`;
}

export interface ControlEvent {
  streamNextOffset: string;
  streamCursor: string;
  upToDate?: true;
}

export function controlEvent(control: ControlEvent): string {
  return `event: control\ndata:${JSON.stringify(control)}\n\n`;
}
