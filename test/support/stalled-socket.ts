import { connect, type Socket } from 'node:net';

/**
 * Sends a GET on a raw socket that never reads a byte of the answer (a frozen tab, a stalled
 * proxy): the server's writes fill the socket buffers and then wait.
 */
export function openStalled(port: number, path: string, headers = ''): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.pause();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/**
 * Reads what a stalled socket gets once it reads again, until the server's end of the connection
 * closes or `enough` holds for the body so far (the socket is then destroyed); returns the
 * response body (de-chunked), possibly cut off mid-event.
 */
export function readToEnd(socket: Socket, enough?: (body: string) => boolean): Promise<string> {
  const chunks: Buffer[] = [];
  const body = () => responseBody(Buffer.concat(chunks).toString('latin1'));
  return new Promise((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (enough?.(body())) socket.destroy();
    });
    socket.once('close', () => resolve(body()));
    socket.on('error', () => undefined);
    socket.resume();
  });
}

/** The body of a raw HTTP/1.1 response (headers cut, chunked framing undone, a cut tail kept). */
function responseBody(raw: string): string {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return '';
  const body = raw.slice(end + 4);
  if (!/^transfer-encoding:\s*chunked/im.test(raw.slice(0, end))) return utf8(body);
  let out = '';
  for (let at = 0; at < body.length;) {
    const line = body.indexOf('\r\n', at);
    if (line < 0) break;
    const size = parseInt(body.slice(at, line), 16);
    if (!(size > 0)) break;
    out += body.slice(line + 2, line + 2 + size);
    at = line + 2 + size + 2;
  }
  return utf8(out);
}

const utf8 = (latin1: string) => Buffer.from(latin1, 'latin1').toString('utf8');

/** The complete SSE events of a body (a cut-off last one left out): their id and data. */
export function sseEvents(body: string): { id?: string; event?: string; data?: string }[] {
  const blocks = body.split('\n\n');
  blocks.pop(); // not terminated by a blank line: incomplete
  return blocks
    .map((block) => {
      const fields: { id?: string; event?: string; data?: string } = {};
      for (const line of block.split('\n')) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const field = line.slice(0, colon);
        const value = line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id' || field === 'event' || field === 'data') fields[field] = value;
      }
      return fields;
    })
    .filter((fields) => fields.data !== undefined);
}
