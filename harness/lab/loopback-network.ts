import { claimBlock } from './addresses.js';
import { startInProcess } from './in-process.js';
import type { Lab } from './lab.js';
import type { LabNetwork } from './network.js';

/**
 * The loopback backend's network (the default, unprivileged): the lab claims a 127.A.B.0/24, every lab
 * host gets an address in it, simulators run in this process behind relays, and clients resolve the
 * lab's names from its hosts file (a private mount namespace) or its lookup.
 */
export function loopbackNetwork(): LabNetwork {
  const block = claimBlock();
  return {
    backend: 'loopback',
    block,
    writesNameFiles: true,
    labDns: true,
    open: async () => {},
    place: (_host, index) => block.address(index),
    startSimulator: async (lab, decl, index) => (await startInProcess(lab, decl, index)).labReady,
    clientNames: (lab) => lab.hosts,
    dnsServer: firstDnsServer,
    close: async () => block.release(),
  };
}

/** `address:port` of the lab's first geo-dns simulator's UDP endpoint, as this process reaches it. */
export function firstDnsServer(lab: Lab): string | undefined {
  for (const sim of lab.simulators.values()) {
    if (sim.decl.type !== 'geo-dns') continue;
    const udp = sim.endpoints.find((e) => e.name === 'dns-udp');
    if (udp) return `${udp.host}:${udp.port}`;
  }
  return undefined;
}
