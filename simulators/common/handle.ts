import type { EventMap, SimulatorEvents } from './events.js';

/** One listening endpoint of a simulator. */
export interface Endpoint {
  /** Endpoint name within the simulator: `http`, `tls`, `wss`, `dns-udp`... */
  name: string;
  host: string;
  port: number;
  /** `tcp`, `udp`, `http`, `https`, `mqtt`, `mqtts`, `ws`, `wss`, `amqps`, `dns`... */
  protocol: string;
  /** A URL a client can use, when the protocol has URLs. */
  url?: string;
}

/**
 * What every simulator's `start(options)` resolves to (DESIGN.md, "Simulator contract").
 * `stop()` closes every listener and open connection and leaves no handle behind; it is idempotent.
 */
export interface SimulatorHandle<M extends EventMap = EventMap, S = Record<string, unknown>> {
  readonly name: string;
  readonly endpoints: readonly Endpoint[];
  readonly events: SimulatorEvents<M>;
  stats(): S;
  stop(): Promise<void>;
}

/** The endpoint of a handle by name; throws when the simulator has no such endpoint. */
export function endpointOf(
  handle: { name: string; endpoints: readonly Endpoint[] },
  name?: string,
): Endpoint {
  const ep = name === undefined ? handle.endpoints[0] : handle.endpoints.find((e) => e.name === name);
  if (!ep) {
    const have = handle.endpoints.map((e) => e.name).join(', ') || 'none';
    throw new Error(`${handle.name} has no endpoint ${name ?? '(default)'} (endpoints: ${have})`);
  }
  return ep;
}
