import type { Server as NetServer, Socket } from 'node:net';

/**
 * Listens on host:port and resolves to the bound port (so `port: 0` works). Rejects with the listen
 * error (EADDRINUSE, EADDRNOTAVAIL...) instead of emitting it.
 */
export function listen(server: NetServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      const addr = server.address();
      if (addr === null || typeof addr === 'string') reject(new Error('server has no TCP address'));
      else resolve(addr.port);
    });
  });
}

/**
 * Listens on a bound handle handed over from elsewhere (a socket bound inside a network namespace) and
 * resolves to its address. Rejects with the listen error instead of emitting it.
 */
export function listenOnHandle(
  server: NetServer,
  handle: object,
): Promise<{ address: string; port: number }> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(handle, () => {
      server.off('error', onError);
      const addr = server.address();
      if (addr === null || typeof addr === 'string') reject(new Error('the handle is not a TCP socket'));
      else resolve(addr);
    });
  });
}

/**
 * Tracks a server's open sockets so that `close()` can end them: `server.close()` alone waits for
 * every client to leave, which a lab must never do.
 */
export class ConnectionTracker {
  private readonly sockets = new Set<Socket>();

  track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  get size(): number {
    return this.sockets.size;
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}

/** Closes a server and destroys its tracked connections; resolves when the server is closed. */
export function closeServer(server: NetServer, tracker?: ConnectionTracker): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      tracker?.destroyAll();
      resolve();
      return;
    }
    server.close(() => resolve());
    tracker?.destroyAll();
  });
}

/** Formats host:port, with brackets for IPv6. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
