/** One SSE block as it came over the wire (fields of one event up to its blank line). */
export interface SseBlock {
  event?: string;
  id?: string;
  data?: string;
  retry?: string;
  comments: string[];
}

/**
 * A raw Server-Sent Events reader over fetch for wire-level tests: it records every block,
 * comments included, and parses nothing beyond the field lines (independent of the client SDK).
 */
export class SseReader {
  readonly blocks: SseBlock[] = [];
  raw = '';
  ended = false;
  private current: SseBlock = { comments: [] };
  private partial = '';
  private readonly controller = new AbortController();
  private changed: (() => void) | null = null;
  readonly done: Promise<void>;

  private constructor(readonly response: Response) {
    this.done = this.pump();
  }

  /** Opens the stream; resolves with the reader once the response headers are in. */
  static async open(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const controller = new AbortController();
    const response = await fetch(url, { headers, signal: controller.signal });
    const reader = new SseReader(response);
    reader.controller.signal.addEventListener('abort', () => controller.abort());
    return reader;
  }

  get status(): number {
    return this.response.status;
  }

  /** Blocks that carry data (events an EventSource dispatches). */
  get events(): SseBlock[] {
    return this.blocks.filter((b) => b.data !== undefined);
  }

  get comments(): string[] {
    return this.blocks.flatMap((b) => b.comments);
  }

  /** Waits until `predicate` holds for what has arrived so far. */
  async until(predicate: (reader: SseReader) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this)) {
      if (this.ended) throw new Error(`the stream ended first; got:\n${this.raw}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms; got:\n${this.raw}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.changed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Waits for the n-th data event (1-based) and returns it. */
  async event(n: number, timeoutMs = 5000): Promise<SseBlock> {
    await this.until((r) => r.events.length >= n, timeoutMs);
    return this.events[n - 1];
  }

  close(): void {
    this.controller.abort();
  }

  private async pump(): Promise<void> {
    const body = this.response.body;
    try {
      if (body) {
        const decoder = new TextDecoder();
        for await (const chunk of body) this.take(decoder.decode(chunk, { stream: true }));
      }
    } catch {
      // aborted
    } finally {
      this.ended = true;
      this.changed?.();
    }
  }

  private take(text: string): void {
    this.raw += text;
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (line === '') {
        if (this.current.comments.length > 0 || Object.keys(this.current).length > 1) {
          this.blocks.push(this.current);
        }
        this.current = { comments: [] };
      } else if (line.startsWith(':')) {
        this.current.comments.push(line.slice(1).trim());
      } else {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') {
          this.current.data =
            this.current.data === undefined ? value : `${this.current.data}\n${value}`;
        } else if (field === 'event' || field === 'id' || field === 'retry') {
          this.current[field] = value;
        }
      }
    }
    this.changed?.();
  }
}
