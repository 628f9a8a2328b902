import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { locateTlsFront, TLS_FRONT_BINARY, TLS_FRONT_MISSING_HINT } from '../simulators/common/tls-front.js';

/**
 * What a scenario or test may need from the machine. `cmd:NAME` means an executable on PATH (or in the
 * places the project's setup script installs to).
 */
export type Capability =
  | 'userns'
  | 'netns'
  | 'root'
  | 'dns53'
  | 'docker'
  | 'k6'
  | 'tls-front'
  | `cmd:${string}`;

export interface CapabilityCheck {
  capability: Capability;
  ok: boolean;
  /** Why it is missing, and how to get it. Empty when ok. */
  reason: string;
}

const cache = new Map<Capability, CapabilityCheck>();

/** Extra places our setup script installs binaries to (go install puts k6 in $HOME/go/bin). */
function searchPath(): string[] {
  const extra = [join(homedir(), 'go', 'bin'), '/root/go/bin', '/usr/local/go/bin', '/usr/sbin', '/sbin'];
  return [...(process.env.PATH ?? '').split(delimiter), ...extra].filter(Boolean);
}

/** Absolute path of an executable, or undefined. */
export function which(name: string): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  for (const dir of searchPath()) {
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** What decides whether this process may bind port 53 (read from the kernel, or given by a test). */
export interface Port53Facts {
  uid: number | undefined;
  /** The effective capability set (`CapEff` of /proc/self/status), when readable. */
  capEff: bigint | undefined;
  /** net.ipv4.ip_unprivileged_port_start, when readable (ports from it up bind without privilege). */
  unprivilegedPortStart: number | undefined;
}

/** CAP_NET_BIND_SERVICE's bit in the capability sets (linux/capability.h). */
const CAP_NET_BIND_SERVICE = 10n;

function readOr<T>(path: string, parse: (text: string) => T | undefined): T | undefined {
  try {
    return parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

export function port53Facts(): Port53Facts {
  return {
    uid: process.getuid?.(),
    capEff: readOr('/proc/self/status', (t) => {
      const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(t)?.[1];
      return hex === undefined ? undefined : BigInt(`0x${hex}`);
    }),
    unprivilegedPortStart: readOr('/proc/sys/net/ipv4/ip_unprivileged_port_start', (t) => {
      const n = Number.parseInt(t.trim(), 10);
      return Number.isInteger(n) ? n : undefined;
    }),
  };
}

/**
 * Whether the lab's DNS can listen on port 53 (resolv.conf takes no port): root, CAP_NET_BIND_SERVICE,
 * or a kernel that lets anyone bind from 53 up. `reason` says how to get it when not.
 */
export function port53Check(facts: Port53Facts = port53Facts()): { ok: boolean; reason: string } {
  const capable = facts.capEff !== undefined && ((facts.capEff >> CAP_NET_BIND_SERVICE) & 1n) === 1n;
  const open = facts.unprivilegedPortStart !== undefined && facts.unprivilegedPortStart <= 53;
  if (facts.uid === 0 || capable || open) return { ok: true, reason: '' };
  return {
    ok: false,
    reason:
      'binding port 53 (resolv.conf takes no port) needs root, CAP_NET_BIND_SERVICE or a lower port start: run as root, give node CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep $(which node)), or sysctl net.ipv4.ip_unprivileged_port_start=53',
  };
}

function runs(argv: string[]): boolean {
  const [cmd, ...args] = argv;
  if (!cmd) return false;
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

function probe(cap: Capability): CapabilityCheck {
  const ok = (yes: boolean, reason: string): CapabilityCheck => ({
    capability: cap,
    ok: yes,
    reason: yes ? '' : reason,
  });
  if (cap.startsWith('cmd:')) {
    const name = cap.slice(4);
    return ok(
      which(name) !== undefined,
      `${name} is not installed (run scripts/setup.sh, or install it with your package manager)`,
    );
  }
  switch (cap) {
    case 'root':
      return ok(process.getuid?.() === 0, 'needs root (or CAP_NET_ADMIN); run as root, e.g. in CI');
    case 'dns53': {
      const c = port53Check();
      return ok(c.ok, c.reason);
    }
    case 'userns':
      return ok(
        which('unshare') !== undefined && runs(['unshare', '--user', '--map-root-user', '--mount', 'true']),
        'user namespaces are not available (kernel.unprivileged_userns_clone=0 or unshare missing); clients then need their own name-resolution options',
      );
    case 'netns':
      return ok(
        process.getuid?.() === 0 && which('ip') !== undefined && which('nft') !== undefined,
        'the netns backend needs root (or CAP_NET_ADMIN), iproute2 and nftables; run scripts/setup.sh as root',
      );
    case 'docker':
      return ok(
        which('docker') !== undefined && runs(['docker', 'info']),
        'no Docker engine answers (`docker info` failed); run scripts/setup.sh as root to install and start one',
      );
    case 'k6':
      return ok(
        which('k6') !== undefined,
        'k6 is not installed; scripts/setup.sh builds it with `go install`',
      );
    case 'tls-front':
      return ok(
        locateTlsFront() !== undefined,
        `${TLS_FRONT_BINARY} (a TLS front that ignores max_fragment_length) is not built: ${TLS_FRONT_MISSING_HINT}`,
      );
    default:
      return ok(false, `unknown capability ${cap}`);
  }
}

/** Checks a capability once per process. */
export function checkCapability(cap: Capability): CapabilityCheck {
  let c = cache.get(cap);
  if (!c) {
    c = probe(cap);
    cache.set(cap, c);
  }
  return c;
}

/** The first missing capability among `caps`, or undefined when all are there. */
export function firstMissing(caps: readonly Capability[]): CapabilityCheck | undefined {
  for (const cap of caps) {
    const c = checkCapability(cap);
    if (!c.ok) return c;
  }
  return undefined;
}

/**
 * `FIELDLAB_REQUIRE=all` (CI) or a comma list (`netns,docker`) turns a missing capability from a skip
 * into a failure.
 */
export function isRequired(cap: Capability): boolean {
  const req = (process.env.FIELDLAB_REQUIRE ?? '').split(',').map((s) => s.trim());
  if (req.includes('all')) return true;
  const base = cap.startsWith('cmd:') ? 'cmd' : cap;
  return req.includes(cap) || req.includes(base);
}
