import {
  CallHandler,
  ExecutionContext,
  Injectable,
  NestInterceptor,
  type INestApplication,
} from '@nestjs/common';
import { map, type Observable } from 'rxjs';
import { followFeed, type ChangesInfo } from '../../src/client';
import { HeldRequests } from '../../src/http-polling/held-requests.service';
import { startItemsFixture, type ItemsFixture } from '../fixtures/items-app';
import { waitFor } from '../support/wait-for';

/** The response envelope from Nest's interceptor docs, installed for every route. */
@Injectable()
class EnvelopeInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((data: unknown) => ({ data })));
  }
}

interface ItemChanges {
  changes: { id: string; op: string }[];
  cursor: string;
}

describe('@LiveStream in an app with a global response-envelope interceptor', () => {
  let fixture: ItemsFixture;
  let url: string;
  let app: INestApplication;

  beforeAll(async () => {
    fixture = await startItemsFixture({}, (nest) => {
      nest.useGlobalInterceptors(new EnvelopeInterceptor());
    });
    ({ url, app } = fixture.items);
  });

  afterAll(() => fixture?.close());

  const held = () => app.get(HeldRequests).size;

  it('the client SDK follows the stream: ids are cursors, data is the feed answer', async () => {
    const since = (await fetch(`${url}/runs/7/changes`)).headers.get('poll-cursor')!;
    const stop = new AbortController();
    const received: { body: ItemChanges; info: ChangesInfo }[] = [];
    const fallbacks: Error[] = [];
    const done = followFeed<ItemChanges>({
      url: `${url}/runs/7/changes`,
      streamUrl: `${url}/runs/7/stream`,
      mode: 'sse',
      since,
      signal: stop.signal,
      onChanges: (body, info) => {
        received.push({ body, info });
      },
      onFallback: (reason) => fallbacks.push(reason),
    }).catch((error: unknown) => error);
    try {
      await waitFor(() => held() === 1, { message: 'the stream is open' });
      const { rows } = await fixture.writer.query(
        "INSERT INTO items (run, body) VALUES (7, 'a') RETURNING id",
      );
      await waitFor(() => received.length === 1, { message: 'the change arrived' });
      const [{ body, info }] = received;
      expect(body.changes.map((c) => c.id)).toEqual([rows[0].id]);
      expect(info.cursor).toBe(body.cursor);
      expect(fallbacks).toEqual([]);
    } finally {
      stop.abort();
      await done;
    }
    await waitFor(() => held() === 0);
  });

  it('writes the events as the stream wrote them, on the wire', async () => {
    const since = (await fetch(`${url}/runs/8/changes`)).headers.get('poll-cursor')!;
    const stop = new AbortController();
    const res = await fetch(`${url}/runs/8/stream?since=${encodeURIComponent(since)}`, {
      signal: stop.signal,
    });
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    try {
      await waitFor(() => held() === 1);
      await fixture.writer.query("INSERT INTO items (run, body) VALUES (8, 'b')");
      while (!/\nid: [^\n]+\ndata: [^\n]+\n\n/.test(`\n${text}`)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
    } finally {
      stop.abort();
    }
    const event = /(?:^|\n)id: ([^\n]+)\ndata: ([^\n]+)\n\n/.exec(text)!;
    const data = JSON.parse(event[2]) as ItemChanges & { data?: unknown };
    expect(data.data).toBeUndefined();
    expect(event[1]).toBe(data.cursor);
    expect(data.changes).toHaveLength(1);
    await waitFor(() => held() === 0);
  });
});
