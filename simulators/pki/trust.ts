import { execFile } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorCode, FieldlabError } from '../common/errors.js';

/**
 * The lab's trust store on disk: one PEM bundle (`-CAfile`, `NODE_EXTRA_CA_CERTS`, curl `--cacert`) and
 * one hashed directory (`-CApath`, `SSL_CERT_DIR`) whose `<subject hash>.0` links `openssl rehash` makes.
 */
export class TrustStore {
  readonly bundlePath: string;
  readonly #hashDir: string;
  readonly #openssl: string;
  #rehashError: FieldlabError | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(dir: string, openssl: string) {
    this.bundlePath = join(dir, 'bundle.pem');
    this.#hashDir = join(dir, 'certs');
    this.#openssl = openssl;
  }

  /**
   * The hashed directory. Throws E_PKI_NO_OPENSSL when the `openssl` binary was missing at the last
   * write, since the directory then has no hash links and would silently trust nothing.
   */
  get hashDir(): string {
    if (this.#rehashError) throw this.#rehashError;
    return this.#hashDir;
  }

  /** Rewrites the bundle and the hashed directory to hold exactly these roots. Writes are serialised. */
  write(roots: readonly string[]): Promise<void> {
    const next = this.#writing.then(() => this.#write(roots));
    this.#writing = next.catch(() => undefined);
    return next;
  }

  async #write(roots: readonly string[]): Promise<void> {
    await mkdir(this.#hashDir, { recursive: true, mode: 0o700 });
    await writeFile(this.bundlePath, roots.join(''), { mode: 0o644 });
    for (const entry of await readdir(this.#hashDir)) await rm(join(this.#hashDir, entry), { force: true });
    await Promise.all(
      roots.map((pem, i) => writeFile(join(this.#hashDir, `root-${i}.pem`), pem, { mode: 0o644 })),
    );
    this.#rehashError = undefined;
    try {
      await run(this.#openssl, ['rehash', this.#hashDir]);
    } catch (err) {
      if (errorCode(err) === 'ENOENT') {
        // Deferred: the bundle works without openssl; only users of hashDir need it.
        this.#rehashError = new FieldlabError(
          'E_PKI_NO_OPENSSL',
          `pki: cannot hash the trust directory: the openssl binary (${this.#openssl}) was not found`,
          {
            hint: 'install OpenSSL (apt-get install openssl) or use the trust bundle file instead',
            cause: err,
          },
        );
        return;
      }
      throw new FieldlabError(
        'E_PKI_REHASH',
        `pki: openssl rehash ${this.#hashDir} failed: ${messageOf(err)}`,
        {
          hint: 'needs OpenSSL 1.1+ (`openssl rehash`); LibreSSL has no rehash command',
          cause: err,
        },
      );
    }
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (err) reject(Object.assign(err, { stderr: String(stderr) }));
      else resolve();
    });
  });
}

function messageOf(err: unknown): string {
  const stderr = (err as { stderr?: string }).stderr?.trim();
  return stderr || (err instanceof Error ? err.message : String(err));
}
