/**
 * The lab certificate authority: a root and an intermediate per lab, leaves for servers and clients,
 * the bad certificates field problems need, independent roots (a TLS inspector's), and trust stores
 * (PEM bundle + `openssl rehash`-ed directory) in a per-lab temp directory that `stop()` removes.
 *
 *   fieldlab Lab Root CA ──▶ fieldlab Lab Intermediate CA ──▶ leaves (issueServer / issueClient)
 *   trust/bundle.pem, trust/certs/<hash>.0  ◀── lab root (+ roots given to addToTrust)
 */
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { FieldlabError } from '../common/errors.js';
import { SimulatorEvents } from '../common/events.js';
import type { Endpoint, SimulatorHandle } from '../common/handle.js';
import { parseOptions } from '../common/options.js';
import { makeBad } from './bad.js';
import { CertificateAuthority } from './ca.js';
import { fileSafe, splitNames } from './names.js';
import { TrustStore } from './trust.js';
import {
  BAD_CERT_KINDS,
  type BadCertKind,
  type IssuedCert,
  type IssuedCertFiles,
  type IssuedEvent,
  type KeyType,
  type LeafOptions,
  type PkiEvents,
  type PkiStats,
} from './types.js';

export { WRONG_HOST } from './bad.js';
export { CertificateAuthority } from './ca.js';
export { isIp } from './names.js';
export * from './types.js';

/** Options of `start()`. */
const pemPair = z.strictObject({ certPem: z.string().min(1), keyPem: z.string().min(1) });

/** A lab CA as certificates and PKCS#8 keys (PEM): what `fieldlab pki` writes as authority.json. */
export const authoritySchema = z.strictObject({ root: pemPair, intermediate: pemPair });
export type Authority = z.infer<typeof authoritySchema>;

/** A running PKI's CA, to hand to another process (`authority` option there). */
export function authorityOf(pki: Pick<PkiHandle, 'root' | 'intermediate'>): Authority {
  return {
    root: { certPem: pki.root.certPem, keyPem: pki.root.keyPem },
    intermediate: { certPem: pki.intermediate.certPem, keyPem: pki.intermediate.keyPem },
  };
}

export const pkiOptionsSchema = z.strictObject({
  /** Lab name of this PKI (event source). */
  name: z.string().min(1).default('pki'),
  /** Parent directory of the per-lab temp directory; default `os.tmpdir()`. */
  dir: z.string().min(1).optional(),
  /** Key type of the lab CAs and of leaves issued through the handle. */
  keyType: z.enum(['ec', 'rsa']).default('ec'),
  /** The openssl binary used for `openssl rehash`. */
  openssl: z.string().min(1).default('openssl'),
  /**
   * Use this lab CA instead of making one (certificates and PKCS#8 keys, PEM): a simulator in a container
   * then issues leaves that the rest of the lab trusts.
   */
  authority: authoritySchema.optional(),
});
export type PkiOptions = z.input<typeof pkiOptionsSchema>;

export type ServerLeafOptions = LeafOptions & {
  /** Basename of the files written (relative to the lab dir); default derived from the first name. */
  file?: string;
};

/** A running lab PKI. */
export interface PkiHandle extends SimulatorHandle<PkiEvents, PkiStats> {
  /** The per-lab temp directory (mkdtemp, mode 0700); removed by `stop()`. */
  readonly dir: string;
  /** "fieldlab Lab Root CA". */
  readonly root: CertificateAuthority;
  /** "fieldlab Lab Intermediate CA": issues leaves by default. */
  readonly intermediate: CertificateAuthority;
  /** Trust store files holding the lab root and any root given to `addToTrust`. */
  readonly trust: { readonly bundlePath: string; readonly hashDir: string };
  /** A server leaf for these names (IP-looking entries become IP SANs), written to files. */
  issueServer(names: string[], opts?: ServerLeafOptions): Promise<IssuedCertFiles>;
  /** A client leaf (extendedKeyUsage clientAuth) with this subject CN, written to files. */
  issueClient(commonName: string, opts?: ServerLeafOptions): Promise<IssuedCertFiles>;
  /** A server certificate for `names` that a client trusting the lab root rejects (see `BadCertKind`). */
  bad(kind: BadCertKind, names: string[]): Promise<IssuedCertFiles>;
  /**
   * An independent root (e.g. a TLS inspector's), not trusted unless given to `addToTrust`. With
   * `intermediate: true`, returns an intermediate under that new root.
   */
  createAuthority(
    commonName: string,
    opts?: { keyType?: KeyType; intermediate?: boolean },
  ): Promise<CertificateAuthority>;
  /** Trusts the root of `ca`: rewrites the bundle and the hashed directory. */
  addToTrust(ca: CertificateAuthority): Promise<void>;
  /** Copies the trust bundle to `path` (for `fieldlab ca`). */
  writeBundle(path: string): Promise<void>;
  /** Writes `<basename>.pem`, `<basename>-key.pem` (mode 0600) and `<basename>-chain.pem` under `dir`. */
  writeFiles(basename: string, cert: IssuedCert): Promise<IssuedCertFiles>;
}

/** Starts a lab PKI: makes the temp dir, the lab root and intermediate, and the trust store. */
export async function start(options?: PkiOptions): Promise<PkiHandle> {
  const opts = parseOptions(pkiOptionsSchema, options, 'pki');
  const parent = opts.dir ?? tmpdir();
  await mkdir(parent, { recursive: true });
  const dir = await mkdtemp(join(parent, 'fieldlab-pki-'));
  try {
    const lab = new Pki(opts.name, dir, opts.keyType, new TrustStore(join(dir, 'trust'), opts.openssl));
    await lab.init(opts.authority);
    return lab;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

class Pki implements PkiHandle {
  readonly endpoints: readonly Endpoint[] = [];
  readonly events: SimulatorEvents<PkiEvents>;
  #root: CertificateAuthority | undefined;
  #intermediate: CertificateAuthority | undefined;
  #unknown: Promise<CertificateAuthority> | undefined;
  readonly #trusted: CertificateAuthority[] = [];
  readonly #counts = { roots: 0, intermediates: 0, leaves: 0, bad: 0 };
  #files = 0;
  #stopped = false;

  constructor(
    readonly name: string,
    readonly dir: string,
    private readonly keyType: KeyType,
    private readonly store: TrustStore,
  ) {
    this.events = new SimulatorEvents<PkiEvents>(name);
  }

  async init(authority?: z.output<typeof pkiOptionsSchema>['authority']): Promise<void> {
    if (authority) {
      this.#root = await CertificateAuthority.fromPem(authority.root);
      CertificateAuthority.setListener(this.#root, this.#onIssued);
      this.#intermediate = await CertificateAuthority.fromPem({
        ...authority.intermediate,
        parent: this.#root,
      });
    } else {
      this.#root = await this.#newRoot('fieldlab Lab Root CA', this.keyType);
      this.#intermediate = await this.#root.createIntermediate({
        commonName: 'fieldlab Lab Intermediate CA',
      });
    }
    this.#trusted.push(this.#root);
    await Promise.all([
      writeFile(join(this.dir, 'lab-root.pem'), this.#root.certPem),
      writeFile(join(this.dir, 'lab-intermediate.pem'), this.#intermediate.certPem),
    ]);
    await this.store.write(this.#trusted.map((ca) => ca.certPem));
  }

  get root(): CertificateAuthority {
    return this.#root as CertificateAuthority;
  }

  get intermediate(): CertificateAuthority {
    return this.#intermediate as CertificateAuthority;
  }

  get trust(): { readonly bundlePath: string; readonly hashDir: string } {
    return this.store;
  }

  stats(): PkiStats {
    const c = this.#counts;
    return { ...c, total: c.roots + c.intermediates + c.leaves + c.bad };
  }

  async issueServer(names: string[], opts: ServerLeafOptions = {}): Promise<IssuedCertFiles> {
    this.#live();
    const { file, ...leafOpts } = opts;
    const { dns, ips } = splitNames(names, opts.ips);
    if (dns.length + ips.length === 0) {
      throw new FieldlabError('E_BAD_OPTION', 'pki: issueServer needs at least one name or IP', {
        where: 'pki issueServer names',
        hint: 'pass the host names (or IPs) clients will connect to',
      });
    }
    const cert = await this.intermediate.issueLeaf({
      keyType: this.keyType,
      ...leafOpts,
      names: [...dns, ...(opts.names ?? [])],
      ips,
      usage: opts.usage ?? 'server',
    });
    return this.writeFiles(file ?? this.#basename('server', dns[0] ?? ips[0] ?? 'server'), cert);
  }

  async issueClient(commonName: string, opts: ServerLeafOptions = {}): Promise<IssuedCertFiles> {
    this.#live();
    const { file, ...leafOpts } = opts;
    const cert = await this.intermediate.issueLeaf({
      keyType: this.keyType,
      ...leafOpts,
      commonName,
      usage: opts.usage ?? 'client',
    });
    return this.writeFiles(file ?? this.#basename('client', commonName), cert);
  }

  async bad(kind: BadCertKind, names: string[]): Promise<IssuedCertFiles> {
    this.#live();
    if (!BAD_CERT_KINDS.includes(kind)) {
      throw new FieldlabError('E_BAD_OPTION', `pki: unknown bad certificate kind ${JSON.stringify(kind)}`, {
        where: 'pki bad kind',
        hint: `use one of ${BAD_CERT_KINDS.join(', ')}`,
      });
    }
    const { dns, ips } = splitNames(names);
    if (dns.length + ips.length === 0) {
      throw new FieldlabError('E_BAD_OPTION', 'pki: bad() needs at least one name or IP', {
        where: 'pki bad names',
        hint: 'pass the host names (or IPs) clients will connect to',
      });
    }
    const cert = await makeBad(kind, names, {
      issuer: this.intermediate,
      unknown: () => this.#unknownIssuer(),
      keyType: this.keyType,
    });
    this.#counts.bad++;
    this.events.emitEvent('issued', {
      kind: 'bad',
      subject: kind === 'wrong-host' ? (cert.names[0] ?? '') : (dns[0] ?? ips[0] ?? ''),
      names: [...cert.names, ...cert.ips],
      bad: kind,
    });
    return this.writeFiles(this.#basename(`bad-${kind}`, dns[0] ?? ips[0] ?? 'host'), cert);
  }

  async createAuthority(
    commonName: string,
    opts: { keyType?: KeyType; intermediate?: boolean } = {},
  ): Promise<CertificateAuthority> {
    this.#live();
    const root = await this.#newRoot(commonName, opts.keyType ?? this.keyType);
    if (!opts.intermediate) return root;
    return root.createIntermediate({ commonName: `${commonName} Intermediate` });
  }

  async addToTrust(ca: CertificateAuthority): Promise<void> {
    this.#live();
    const root = ca.root();
    if (!this.#trusted.includes(root)) this.#trusted.push(root);
    await this.store.write(this.#trusted.map((c) => c.certPem));
  }

  async writeBundle(path: string): Promise<void> {
    this.#live();
    await mkdir(dirname(resolve(path)), { recursive: true });
    await writeFile(path, this.#trusted.map((c) => c.certPem).join(''), { mode: 0o644 });
  }

  async writeFiles(basename: string, cert: IssuedCert): Promise<IssuedCertFiles> {
    this.#live();
    if (typeof basename !== 'string' || basename === '') {
      throw new FieldlabError('E_BAD_OPTION', 'pki: writeFiles needs a non-empty basename', {
        where: 'pki writeFiles basename',
        hint: 'pass a file basename such as "device" (written under the lab dir)',
      });
    }
    const base = resolve(this.dir, basename);
    await mkdir(dirname(base), { recursive: true });
    const certPath = `${base}.pem`;
    const keyPath = `${base}-key.pem`;
    const chainPath = `${base}-chain.pem`;
    await Promise.all([
      writeFile(certPath, cert.certPem, { mode: 0o644 }),
      writePrivate(keyPath, cert.keyPem),
      writeFile(chainPath, cert.chainPem, { mode: 0o644 }),
    ]);
    return { ...cert, certPath, keyPath, chainPath };
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await rm(this.dir, { recursive: true, force: true });
  }

  #live(): void {
    if (this.#stopped) {
      throw new FieldlabError('E_STOPPED', `${this.name}: the PKI was stopped`, {
        hint: 'start a new PKI; its files were removed by stop()',
      });
    }
  }

  #basename(prefix: string, name: string): string {
    this.#files++;
    return `${prefix}-${this.#files}-${fileSafe(name)}`;
  }

  #onIssued = (event: IssuedEvent): void => {
    if (event.kind === 'intermediate') this.#counts.intermediates++;
    else if (event.kind === 'leaf') this.#counts.leaves++;
    this.events.emitEvent('issued', event);
  };

  async #newRoot(commonName: string, keyType: KeyType): Promise<CertificateAuthority> {
    const root = await CertificateAuthority.createRoot({ commonName, keyType });
    CertificateAuthority.setListener(root, this.#onIssued);
    this.#counts.roots++;
    this.events.emitEvent('issued', { kind: 'root', subject: commonName, names: [] });
    return root;
  }

  // The root behind 'unknown-root': made once per lab, never trusted.
  #unknownIssuer(): Promise<CertificateAuthority> {
    if (this.#unknown === undefined) {
      this.#unknown = this.#newRoot('fieldlab Unknown Root CA', this.keyType).then((root) =>
        root.createIntermediate({ commonName: 'fieldlab Unknown Intermediate CA' }),
      );
      this.#unknown.catch(() => {
        this.#unknown = undefined;
      });
    }
    return this.#unknown;
  }
}

/** Writes a private key readable by its owner only, also when the file already existed. */
async function writePrivate(path: string, pem: string): Promise<void> {
  const fh = await open(path, 'w', 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(pem);
  } finally {
    await fh.close();
  }
}
