import type { LookupFunction } from 'node:net';
import { z } from 'zod';
import { destinationsSchema } from '../common/destinations.js';
import { durationSchema } from '../common/index.js';
import { parseTarget } from '../common/targets.js';
import type { CertificateAuthority } from '../pki/index.js';
import { INSPECTOR_FAULTS, type InspectorFault } from './leaves.js';

function isAuthority(v: unknown): v is CertificateAuthority {
  if (typeof v !== 'object' || v === null) return false;
  const ca = v as Partial<CertificateAuthority>;
  return (
    typeof ca.issueLeaf === 'function' && typeof ca.certPem === 'string' && typeof ca.root === 'function'
  );
}

const authority = z.custom<CertificateAuthority>(isAuthority, {
  message: 'expected a CertificateAuthority from simulators/pki (createRoot / createIntermediate)',
});

const hostPortString = z.string().refine((s) => parseTarget(s) !== undefined, {
  message: 'expected host:port (e.g. api.lab.example:443)',
});

/** Options of the TLS inspector; every field has a default. */
export const tlsInspectorOptionsSchema = z.strictObject({
  /** Lab name (the `source` of its events). */
  name: z.string().min(1).default('tls-inspector'),
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(0),
  /**
   * The CA that signs the forged leaves: typically an intermediate under the inspector's own root (as
   * Zscaler), or a root. Default: a fresh root `fieldlab TLS Inspector Root CA` with an intermediate.
   */
  ca: authority.optional(),
  /**
   * The common name of the root made when `ca` is not given: the subject a site's inspecting proxy showed
   * (`fieldlab doctor --emit-scenario` captures it), so a device's trust error names the same root. The
   * key is a fresh lab key, never the real one.
   */
  rootName: z.string().trim().min(1).max(64).optional(),
  /** The common name of the intermediate under that root; default `<rootName> Intermediate`. */
  intermediateName: z.string().trim().min(1).max(64).optional(),
  /** PEM certificates the inspector trusts for its own TLS to the real targets; default Node's bundle. */
  upstreamCa: z.array(z.string().min(1)).optional(),
  /** Host patterns (`*` wildcards) tunnelled raw, without interception. */
  passthrough: z.array(z.string().min(1)).default([]),
  /** `'host:port' → 'host:port'`: where the upstream connection goes (SNI and checks keep the name). */
  map: z.record(hostPortString, hostPortString).default({}),
  /**
   * Where the inspector itself may connect (after `map`): host names (`*` wildcards), IP addresses and
   * CIDRs, or `any`. Anything else gets 403 and `destination-denied`. Default: loopback when the
   * inspector listens on loopback, else nothing (list them). A lab gives its own hosts (names and
   * addresses).
   */
  destinations: destinationsSchema.optional(),
  /** Basic proxy authentication (RFC 7617); a CONNECT without good credentials gets 407. */
  auth: z
    .strictObject({
      users: z.array(z.object({ username: z.string().min(1), password: z.string() })).min(1),
      realm: z.string().default('fieldlab'),
    })
    .optional(),
  /** A certificate fault in every forged leaf. */
  fault: z.enum(INSPECTOR_FAULTS as [InspectorFault, ...InspectorFault[]]).default('none'),
  /** Forged leaves kept (LRU). */
  leafCacheSize: z.number().int().min(1).default(1000),
  /** How long a client may take to send its ClientHello and finish its handshake. */
  handshakeTimeout: durationSchema.default(10_000),
  /** How long the inspector waits for the real target's TCP + TLS. */
  upstreamTimeout: durationSchema.default(10_000),
  /** Name resolution for targets (a lab resolves its own names; default: the system's). */
  lookup: z
    .custom<LookupFunction>((v) => typeof v === 'function', 'expected a net.LookupFunction')
    .optional(),
});

export type TlsInspectorOptions = z.input<typeof tlsInspectorOptionsSchema>;
export type ResolvedTlsInspectorOptions = z.output<typeof tlsInspectorOptionsSchema>;
