// A TCP proxy a test controls (node:net), put between ONE node and a server
// (Redis, PostgreSQL) to break that single link: `cut()` resets every
// connection and every new one; `hang()` keeps connections open but
// forwards nothing either way (and accepts new ones that go nowhere), as a
// frozen network path does; `restore()` ends the broken connections so the
// client reconnects, and forwards again.
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

type Mode = 'open' | 'cut' | 'hang';

export class TcpProxy {
  private mode: Mode = 'open';
  private readonly sockets = new Set<Socket>();

  private readonly server: Server;
  port = 0;

  private constructor(host: string, port: number) {
    this.server = createServer((client) => this.accept(client, host, port));
  }

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetHost, targetPort);
    proxy.server.listen(0, '127.0.0.1');
    await once(proxy.server, 'listening');
    proxy.port = (proxy.server.address() as { port: number }).port;
    return proxy;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => this.sockets.delete(socket));
  }

  private accept(client: Socket, host: string, port: number): void {
    this.track(client);
    if (this.mode === 'cut') return void client.resetAndDestroy();
    if (this.mode === 'hang') return; // accepted, never answered
    const upstream = createConnection({ host, port });
    this.track(upstream);
    // Forwarded only while open: in a hang the bytes go nowhere.
    client.on('data', (d) => this.mode === 'open' && upstream.write(d));
    upstream.on('data', (d) => this.mode === 'open' && client.write(d));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  cut(): void {
    this.mode = 'cut';
    for (const s of this.sockets) s.resetAndDestroy();
  }

  hang(): void {
    this.mode = 'hang';
  }

  restore(): void {
    for (const s of this.sockets) s.destroy();
    this.mode = 'open';
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.server.close();
    await once(this.server, 'close');
  }
}
