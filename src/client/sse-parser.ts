/** One dispatched Server-Sent Event. */
export interface SseEvent {
  /** `event:` field, `message` when absent. */
  type: string;
  /** `data:` lines joined with `\n`. */
  data: string;
  /** The stream's last event id after this event (`id:` of this or an earlier event). */
  lastEventId: string;
}

export interface SseHandlers {
  onEvent(event: SseEvent): void;
  /** A comment line (`: keep-alive`), without the colon and one leading space. */
  onComment?(text: string): void;
  /** A valid `retry:` field, in ms. */
  onRetry?(ms: number): void;
}

/**
 * The event-stream parser of the HTML standard (§9.2.6), fed text as it arrives: lines end with
 * CRLF, LF or CR (also split across chunks), a blank line dispatches, an event without data only
 * updates the last event id, an `id` containing NUL is ignored.
 */
export class SseParser {
  private buffer = '';
  private pendingCr = false;
  private started = false;
  private data: string[] = [];
  private type = '';
  private lastEventId = '';

  constructor(private readonly handlers: SseHandlers) {}

  push(text: string): void {
    let chunk = text;
    if (chunk.length === 0) return;
    if (!this.started) {
      this.started = true;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    // A CR that ended the previous chunk ended its line; a LF right after it belongs to it.
    if (this.pendingCr && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.pendingCr = false;
    const buffer = this.buffer + chunk;
    let start = 0;
    for (;;) {
      const cr = buffer.indexOf('\r', start);
      const lf = buffer.indexOf('\n', start);
      const end = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
      if (end === -1) break;
      this.line(buffer.slice(start, end));
      start = end + 1;
      if (buffer[end] === '\r') {
        if (start === buffer.length) this.pendingCr = true;
        else if (buffer[start] === '\n') start++;
      }
    }
    this.buffer = buffer.slice(start);
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) {
      this.handlers.onComment?.(line.slice(1).replace(/^ /, ''));
      return;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.type = value;
    else if (field === 'id' && !value.includes('\0')) this.lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.handlers.onRetry?.(Number(value));
  }

  private dispatch(): void {
    const data = this.data;
    const type = this.type;
    this.data = [];
    this.type = '';
    if (data.length === 0) return;
    this.handlers.onEvent({
      type: type || 'message',
      data: data.join('\n'),
      lastEventId: this.lastEventId,
    });
  }
}
