import type { SimulatorAdapter } from './adapter.js';
import { awsIot } from './aws-iot.js';
import { connectProxy } from './connect-proxy.js';
import { dps } from './dps.js';
import { geoDns } from './geo-dns.js';
import { httpsServer } from './https-server.js';
import { iotHub } from './iot-hub.js';
import { krypton } from './krypton.js';
import { mqttBroker } from './mqtt-broker.js';
import { resolver } from './resolver.js';
import { sshd } from './sshd.js';
import { tlsInspector } from './tls-inspector.js';
import { tunnelService } from './tunnel-service.js';

/**
 * The one simulator registry: a scenario's `type:` → its adapter (one file per type in this folder, as
 * faults have one file per toxic). Labs start simulators through it, `fieldlab serve` and `fieldlab up`
 * run them, `fieldlab list --simulators` and the scenario JSON Schema describe them.
 */
export {
  type AdapterContext,
  type AdapterDefinition,
  defineAdapter,
  type LabSimulatorHandle,
  peerOf,
  type SimulatorAdapter,
  type StartedSimulator,
} from './adapter.js';

const ADAPTERS = new Map<string, SimulatorAdapter>();

/** Registers (or replaces) a simulator type, e.g. one a user adds from `defineAdapter`. */
export function registerAdapter(a: SimulatorAdapter): void {
  ADAPTERS.set(a.type, a);
}

const BUILT_IN: SimulatorAdapter[] = [
  awsIot,
  iotHub,
  dps,
  krypton,
  sshd,
  geoDns,
  resolver,
  tunnelService,
  connectProxy,
  tlsInspector,
  httpsServer,
  mqttBroker,
];
for (const a of BUILT_IN) registerAdapter(a);

export function adapterFor(type: string): SimulatorAdapter | undefined {
  return ADAPTERS.get(type);
}

export function adapterTypes(): string[] {
  return [...ADAPTERS.keys()].sort();
}

export function listAdapters(): Array<{ type: string; summary: string }> {
  return adapterTypes().map((t) => ({ type: t, summary: ADAPTERS.get(t)?.summary ?? '' }));
}
