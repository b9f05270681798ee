import {
  ArgumentsHost,
  Catch,
  ExceptionFilter,
  HttpException,
  VersioningType,
} from '@nestjs/common';
import type { AnyReply } from '../support/http-platform';
import { Agent, request } from 'node:http';
import { Socket } from 'node:net';
import type { Server } from 'node:http';
import { AllowHeaderGuard } from '../fixtures/batch-poll.controller';
import { startItemsFixture, type ItemsFixture } from '../fixtures/items-app';
import { waitFor } from '../support/wait-for';

interface FeedAnswer {
  status: number;
  cursor?: string;
  body?: { ids?: string[]; changes?: { id: string }[]; cursor?: string; reason?: string };
}
interface BatchBody {
  feeds: Record<string, FeedAnswer>;
}

/** A host app's own error format, as many apps install one globally. */
@Catch(HttpException)
class AppErrorFilter implements ExceptionFilter {
  catch(error: HttpException, host: ArgumentsHost) {
    const status = error.getStatus();
    host
      .switchToHttp()
      .getResponse<AnyReply>()
      .status(status)
      .send({ statusCode: status, message: error.message, app: 'filtered' });
  }
}

/** POSTs JSON over one kept-alive socket, so the test's own client opens no new connection. */
function post(
  agent: Agent,
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', ...headers },
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined }),
      );
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('batch poll: feed routes run in-process, in an app with a global prefix and URI versions', () => {
  let fixture: ItemsFixture;
  let agent: Agent;
  let base: string;

  beforeAll(async () => {
    fixture = await startItemsFixture({}, (app) => {
      app.setGlobalPrefix('api');
      app.enableVersioning({ type: VersioningType.URI, defaultVersion: '1' });
      app.useGlobalFilters(new AppErrorFilter());
    });
    agent = new Agent({ keepAlive: true, maxSockets: 1 });
    base = `${fixture.items.url}/api/v1`;
  });

  afterAll(async () => {
    agent?.destroy();
    await fixture?.close();
  });

  const batch = (body: unknown, headers?: Record<string, string>) =>
    post(agent, `${base}/poll`, body, headers);

  it('names feeds by the paths clients GET, with the prefix and version, and without the prefix', async () => {
    const start = await batch({
      feeds: { '/api/v1/runs/1/changes': null, '/v1/runs/2/changes': null },
    });
    expect(start.status).toBe(200);
    const feeds = (start.json as BatchBody).feeds;
    expect(feeds['/api/v1/runs/1/changes'].status).toBe(200);
    expect(feeds['/v1/runs/2/changes'].status).toBe(200);

    const poll = batch({
      feeds: {
        '/api/v1/runs/1/changes': feeds['/api/v1/runs/1/changes'].cursor,
        '/v1/runs/2/changes': feeds['/v1/runs/2/changes'].cursor,
      },
      wait: 10,
    });
    await new Promise((r) => setTimeout(r, 150));
    const { rows } = await fixture.writer.query(
      "INSERT INTO items (run, body) VALUES (1, 'a') RETURNING id",
    );
    const answer = await poll;
    expect(answer.status).toBe(200);
    const changed = (answer.json as BatchBody).feeds;
    expect(Object.keys(changed)).toEqual(['/api/v1/runs/1/changes']);
    expect(changed['/api/v1/runs/1/changes'].body?.changes?.map((c) => c.id)).toEqual([rows[0].id]);
  });

  it('opens no socket while it answers: no request to its own server', async () => {
    const server = fixture.items.app.getHttpServer() as Server;
    let accepted = 0;
    let requests = 0;
    const onConnection = () => accepted++;
    const onRequest = () => requests++;
    server.on('connection', onConnection);
    server.on('request', onRequest);
    const connect = jest.spyOn(Socket.prototype, 'connect');
    try {
      const start = await batch({ feeds: { '/api/v1/runs/3/changes': null } });
      const cursor = (start.json as BatchBody).feeds['/api/v1/runs/3/changes'].cursor;
      const poll = batch({ feeds: { '/api/v1/runs/3/changes': cursor }, wait: 10 });
      await new Promise((r) => setTimeout(r, 150));
      await fixture.writer.query("INSERT INTO items (run, body) VALUES (3, 'b')");
      const answer = await poll;
      expect(answer.status).toBe(200);
      const unchanged = await batch({ feeds: { '/api/v1/runs/3/changes': cursor }, wait: 0 });
      expect(unchanged.status).toBe(200); // the change is still after that cursor
    } finally {
      connect.mockRestore();
      server.off('connection', onConnection);
      server.off('request', onRequest);
    }
    // The test's own three batch polls, over its one kept-alive socket, and nothing else.
    expect(requests).toBe(3);
    expect(connect).not.toHaveBeenCalled();
    expect(accepted).toBe(0);
  });

  it("fails the batch with the feed route's guard refusal, through the app's own filter", async () => {
    const denied = await batch({ feeds: { '/api/v1/guarded/4/changes': null } });
    expect(denied.status).toBe(403);
    expect(denied.json).toMatchObject({ statusCode: 403, app: 'filtered' });
    const allowed = await batch(
      { feeds: { '/api/v1/guarded/4/changes': null } },
      { 'x-allow': 'yes' },
    );
    expect(allowed.status).toBe(200);
  });

  it("after a wake-up, runs a changed feed's handler with what its guards attached, guards not again", async () => {
    const allow = { 'x-allow': 'yes' };
    const key = '/api/v1/guarded/7/changes';
    const start = await batch({ feeds: { [key]: null } }, allow);
    const cursor = (start.json as BatchBody).feeds[key].cursor;
    const before = AllowHeaderGuard.runs;
    const poll = batch({ feeds: { [key]: cursor }, wait: 10 }, allow);
    // The guard runs after the feed's first index read: from then on, only a wake-up finds the row.
    await waitFor(() => AllowHeaderGuard.runs > before);
    const { rows } = await fixture.writer.query(
      "INSERT INTO items (run, body) VALUES (7, 'd') RETURNING id",
    );
    const answer = await poll;
    expect(answer.status).toBe(200);
    expect((answer.json as BatchBody).feeds[key]).toMatchObject({
      status: 200,
      body: { ids: [rows[0].id], reason: 'change', allowedBy: 'x-allow' },
    });
    expect(AllowHeaderGuard.runs).toBe(before + 1);
  });

  it('follows a feed whose partition is a function of the request (a header)', async () => {
    const start = await batch({ feeds: { '/api/v1/by-header/changes': null } }, { 'x-run': '5' });
    expect(start.status).toBe(200);
    const cursor = (start.json as BatchBody).feeds['/api/v1/by-header/changes'].cursor;
    const poll = batch(
      { feeds: { '/api/v1/by-header/changes': cursor }, wait: 10 },
      { 'x-run': '5' },
    );
    await new Promise((r) => setTimeout(r, 150));
    await fixture.writer.query("INSERT INTO items (run, body) VALUES (6, 'other run')");
    const { rows } = await fixture.writer.query(
      "INSERT INTO items (run, body) VALUES (5, 'c') RETURNING id",
    );
    const answer = await poll;
    expect(answer.status).toBe(200);
    expect((answer.json as BatchBody).feeds['/api/v1/by-header/changes'].body?.ids).toEqual([
      rows[0].id,
    ]);
    const missing = await batch({ feeds: { '/api/v1/by-header/changes': null } });
    expect(missing.status).toBe(400);
  });
});
