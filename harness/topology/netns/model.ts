import { z } from 'zod';

/**
 * The topology a netns lab is built from: plain data, validated with zod at the boundary (`planNetns`
 * calls `parseOptions`), then checked against the address plan.
 *
 *   { labId, segments: [{name, cidr}], hosts: [{name, segments: [{segment, address}], routes,
 *     firewall, wireguard, bandwidth, forward}], dns }
 */

const ifnameSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,15}$/, 'an interface name: 1-15 characters from A-Z a-z 0-9 _ . -');

export const firewallRuleSchema = z.strictObject({
  /** drop = silent (the client's connect times out); reject = refusal (TCP RST / ICMP unreachable). */
  action: z.enum(['drop', 'reject', 'accept']),
  /** Where the rule applies; default both `input` (to this host) and `forward` (through it). */
  chain: z.enum(['input', 'forward', 'output']).optional(),
  proto: z.enum(['tcp', 'udp', 'icmp']).optional(),
  /** Destination port or inclusive range (needs proto tcp or udp). */
  port: z
    .union([z.number().int().min(1).max(65535), z.tuple([z.number().int(), z.number().int()])])
    .optional(),
  /** Source address or network. */
  from: z.string().optional(),
  /** Destination address or network. */
  to: z.string().optional(),
  /** Shown in reports next to the counter. */
  comment: z.string().max(100).optional(),
});
export type FirewallRule = z.infer<typeof firewallRuleSchema>;

export const wireguardPeerSchema = z.strictObject({
  /** The lab host at the other end (its `wireguard` block gives the public key and port). */
  host: z.string(),
  /** What this side sends through the tunnel, and accepts from it. */
  allowedIps: z.array(z.string()).min(1),
  /**
   * Where to send handshakes: `true` (default) = the peer's address on a shared segment (or its first
   * address) and its listen port; `false` = none (wait for the peer); or an explicit `a.b.c.d:port`.
   */
  endpoint: z.union([z.boolean(), z.string()]).default(true),
  persistentKeepalive: z.number().int().min(0).max(65535).optional(),
});

export const wireguardSchema = z.strictObject({
  /**
   * Interface name. It must be distinct across every namespace on the machine (the UAPI socket
   * `/var/run/wireguard/<ifname>.sock` is shared): default `fl<labId>w<n>`.
   */
  ifname: ifnameSchema.optional(),
  /** The tunnel address, e.g. 100.127.10.2/32. */
  address: z.string(),
  listenPort: z.number().int().min(1).max(65535).default(51820),
  peers: z.array(wireguardPeerSchema).default([]),
});
export type WireguardConfig = z.infer<typeof wireguardSchema>;

export const routeSchema = z.strictObject({
  /** `default` or a network. */
  to: z.string(),
  via: z.string().optional(),
  /** A segment this host is on, or the host's WireGuard interface name. */
  dev: z.string().optional(),
});

const rateSchema = z.union([
  z.number().int().positive(),
  z.string().regex(/^\d+(\.\d+)?(bit|kbit|mbit|gbit)$/, 'a rate such as 512kbit, 2mbit (tc units)'),
]);

export const bandwidthSchema = z.strictObject({
  /** Bits per second, or a tc rate (`512kbit`, `2mbit`). */
  rate: rateSchema,
  /** The segment whose link is shaped; default the host's first. */
  segment: z.string().optional(),
  /** egress = what the host sends; ingress = what it receives (shaped on the switch side). */
  direction: z.enum(['egress', 'ingress', 'both']).default('egress'),
});
export type BandwidthConfig = z.infer<typeof bandwidthSchema>;

export const hostSchema = z.strictObject({
  name: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,19}$/, 'lower-case letters, digits and -, starting with a letter, ≤ 20 chars')
    .refine((n) => n !== 'sw', '"sw" is the switch namespace'),
  segments: z
    .array(
      z.strictObject({
        segment: z.string(),
        /** `a.b.c.d` (takes the segment's prefix) or `a.b.c.d/len`. */
        address: z.string(),
        /** Interface name inside the host; default eth0, eth1... */
        ifname: ifnameSchema.optional(),
      }),
    )
    .default([]),
  routes: z.array(routeSchema).default([]),
  /** Routes between segments (net.ipv4.ip_forward=1 in this namespace). */
  forward: z.boolean().default(false),
  firewall: z.array(firewallRuleSchema).optional(),
  wireguard: wireguardSchema.optional(),
  bandwidth: z.array(bandwidthSchema).optional(),
});
export type HostConfig = z.infer<typeof hostSchema>;

export const segmentSchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,19}$/, 'lower-case letters, digits and -, ≤ 20 chars'),
  /** A network from the lab ranges (DESIGN.md, "Address plan"). */
  cidr: z.string(),
});

export const topologySchema = z.strictObject({
  /** Lower-case letters and digits, ≤ 10 chars: part of every namespace and default interface name. */
  labId: z.string().regex(/^[a-z0-9]{1,10}$/, 'lower-case letters and digits, 1-10 chars'),
  segments: z.array(segmentSchema).min(1),
  hosts: z.array(hostSchema).min(1),
  dns: z
    .strictObject({
      /** resolv.conf nameservers inside every namespace (the lab DNS). */
      nameservers: z.array(z.string()).default([]),
      /** Extra /etc/hosts entries: name → address. Lab hosts are always listed under their names. */
      hosts: z.record(z.string(), z.string()).default({}),
      search: z.string().optional(),
      /**
       * The machine's own name, at 127.0.1.1 as Debian's /etc/hosts has it: a program that looks itself up
       * (a client id, a log line) asks no lab DNS, whose answer would read as the lab's DNS failing it.
       */
      localName: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/)
        .optional(),
    })
    .default({ nameservers: [], hosts: {} }),
});

export type TopologyInput = z.input<typeof topologySchema>;
export type Topology = z.output<typeof topologySchema>;
