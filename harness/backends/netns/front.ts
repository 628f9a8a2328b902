import { randomUUID } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { SimulatorEvents } from '../../../simulators/common/events.js';
import { ConnectionTracker, closeServer, listenOnHandle } from '../../../simulators/common/net.js';

/**
 * A simulator's public face inside a network namespace (the netns backend): a listening socket bound in
 * the simulator's host namespace (handed over by `NetnsLab.bindIn`), whose connections are piped to the
 * simulator's loopback relay. Everything a client does on the way there crosses the kernel's network
 * (routes, nftables, WireGuard); the simulator itself and the toxics stay in this process.
 */
export interface NetnsFrontEvents {
  [key: string]: unknown;
  /** A client reached the simulator's host across the lab network. */
  connection: { id: string; remote: string; port: number };
  closed: { id: string };
  /** The simulator side refused or failed: the client's connection is reset. */
  'upstream-error': { id: string; code: string };
}

export interface NetnsFront {
  readonly events: SimulatorEvents<NetnsFrontEvents>;
  readonly port: number;
  stop(): Promise<void>;
}

export async function startNetnsFront(options: {
  name: string;
  /** A bound listening TCP handle (from `bindIn`). */
  handle: object;
  upstream: { host: string; port: number };
}): Promise<NetnsFront> {
  const events = new SimulatorEvents<NetnsFrontEvents>(options.name);
  const tracker = new ConnectionTracker();
  // Half-open on both sides: a client's FIN travels on, and the answer still comes back.
  const server = createServer({ allowHalfOpen: true }, (client: Socket) => {
    const id = randomUUID().slice(0, 8);
    tracker.track(client);
    events.emitEvent('connection', {
      id,
      remote: `${client.remoteAddress ?? '?'}:${client.remotePort ?? 0}`,
      port: client.localPort ?? 0,
    });
    const upstream = connect({ ...options.upstream, allowHalfOpen: true });
    tracker.track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      events.emitEvent('upstream-error', { id, code: err.code ?? err.message });
      client.resetAndDestroy();
    });
    client.on('error', () => upstream.destroy());
    client.on('close', () => {
      upstream.destroy();
      events.emitEvent('closed', { id });
    });
    upstream.on('close', () => {
      if (!client.writableEnded) client.end();
    });
  });
  const { port } = await listenOnHandle(server, options.handle);
  let stopped: Promise<void> | undefined;
  return {
    events,
    port,
    stop() {
      stopped ??= closeServer(server, tracker);
      return stopped;
    },
  };
}
