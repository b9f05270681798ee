import type { Request } from 'express';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { InternalDispatch } from '../../src/http-polling/batch/internal-dispatch.service';
import { startItemsFixture, type ItemsFixture } from '../fixtures/items-app';
import { waitFor } from '../support/wait-for';

/**
 * The batch poll asks each feed route over kept-alive loopback sockets. A server closes an idle
 * kept-alive socket on its own (keepAliveTimeout); when that happens just as the socket is reused,
 * the GET never reached the route and must be sent again, not become the batch's 500.
 */
describe('InternalDispatch: a reused loopback socket the server has just reset', () => {
  let fixture: ItemsFixture;
  const serverSockets = new Set<Socket>();

  beforeAll(async () => {
    fixture = await startItemsFixture();
    const server = fixture.items.app.getHttpServer() as Server;
    server.on('connection', (socket) => {
      serverSockets.add(socket);
      socket.once('close', () => serverSockets.delete(socket));
    });
  });

  afterAll(() => fixture?.close());

  it('sends the GET again on a fresh socket and answers', async () => {
    const dispatch = fixture.items.app.get(InternalDispatch);
    const from = { headers: {} } as Request;
    const first = await dispatch.get('/runs/1/changes', {}, from, {});
    expect(first.status).toBe(200);
    // The dispatcher's connection is the only one to the server, now idle in its pool.
    await waitFor(() => serverSockets.size === 1);
    const [serverSide] = serverSockets;

    // The server resets it, and in the same tick (before the client can see the RST) the
    // dispatcher takes it from its pool again.
    serverSide.resetAndDestroy();
    const second = await dispatch.get('/runs/1/changes', {}, from, {});

    expect(second.status).toBe(200);
    expect(serverSockets.has(serverSide)).toBe(false);
  });
});
