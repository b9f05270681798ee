import { SseParser, type SseEvent } from '../../src/client';

function parse(chunks: string[]) {
  const events: SseEvent[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = new SseParser({
    onEvent: (e) => events.push(e),
    onComment: (c) => comments.push(c),
    onRetry: (ms) => retries.push(ms),
  });
  for (const chunk of chunks) parser.push(chunk);
  return { events, comments, retries };
}

describe('SseParser (the HTML event-stream format)', () => {
  it('parses events, ids, types, comments and retry', () => {
    const { events, comments, retries } = parse([
      '\n: connected\n\nid: C1\ndata: {"a":1}\n\n: keep-alive\n\nevent: reset\nid: C2\ndata: {"cursor":"C2"}\n\nretry: 3000\n\n',
    ]);
    expect(events).toEqual([
      { type: 'message', data: '{"a":1}', lastEventId: 'C1' },
      { type: 'reset', data: '{"cursor":"C2"}', lastEventId: 'C2' },
    ]);
    expect(comments).toEqual(['connected', 'keep-alive']);
    expect(retries).toEqual([3000]);
  });

  it('handles any split of CRLF, CR and LF line ends, a BOM and multi-line data', () => {
    const text = '\uFEFFid: 7\r\ndata: one\rdata:two\r\n\r\ndata: three\n\nid: 8\nevent: x\n\n';
    const whole = parse([text]);
    expect(whole.events).toEqual([
      { type: 'message', data: 'one\ntwo', lastEventId: '7' },
      { type: 'message', data: 'three', lastEventId: '7' },
    ]);
    for (let i = 0; i <= text.length; i++) {
      for (let j = i; j <= text.length; j++) {
        const split = parse([text.slice(0, i), text.slice(i, j), text.slice(j)]);
        expect(split.events).toEqual(whole.events);
      }
    }
  });

  it('keeps an unfinished event until its blank line, ignores ids with NUL and bad retry', () => {
    const parser = parse(['id: a\0b\ndata: x\n\nretry: 1e3\ndata: incomplete\n']);
    expect(parser.events).toEqual([{ type: 'message', data: 'x', lastEventId: '' }]);
    expect(parser.retries).toEqual([]);
  });
});
