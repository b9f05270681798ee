import { Agent, get, type ClientRequest } from 'node:http';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  at: number;
  body: string;
}

/** A GET over node:http with an explicit agent (fetch does not suit 1,000 concurrent sockets). */
export function send(
  url: string,
  agent: Agent,
  headers: Record<string, string> = {},
): { request: ClientRequest; reply: Promise<Reply> } {
  let request!: ClientRequest;
  const reply = new Promise<Reply>((resolve, reject) => {
    request = get(url, { agent, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, at: performance.now(), body }),
      );
      res.on('error', reject);
    });
    request.on('error', reject);
  });
  return { request, reply };
}
