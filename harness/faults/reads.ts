/** Smallest and largest read buffer of a socket the relay opens. */
const MIN_READ = 16 * 1024;
const MAX_READ = 1024 * 1024;

/**
 * Reads of a socket the relay opens, through net's `onread` (sockets it accepts cannot have one): into a
 * buffer reused from read to read, so a chunk costs no allocation and no stream machinery, and a read can
 * take up to 1 MiB where Node's own reads stop at 64 KiB. The buffer doubles after a read that filled it
 * and halves after one that used less than a quarter, so an idle connection holds 16 KiB. A chunk that
 * outlives its callback (a write the kernel did not take at once, a chunk queued for a toxic) is handed
 * over or copied, and the next read gets a fresh buffer.
 */
export class ReusedReads {
  /** Receives each chunk; the chunk is only valid during the call unless `keep`/`handOver` says so. */
  handler: ((data: Buffer) => void) | undefined;
  /** Allocated at the socket's first read-buffer request (a connection that never dials holds none). */
  private buf: Buffer | undefined;
  private taken = false;
  private lastRead = 0;

  /** The `onread` option for `net.connect`. */
  readonly onread = {
    buffer: (): Buffer => this.next(),
    callback: (n: number, buf: Uint8Array): boolean => {
      this.lastRead = n;
      // With no handler (the connection is closing or blackholed) the bytes are dropped.
      this.handler?.(Buffer.from(buf.buffer, buf.byteOffset, n));
      return true;
    },
  };

  /** The chunk stays referenced after the callback (e.g. by a pending write): never reuse its memory. */
  handOver(): void {
    this.taken = true;
  }

  /** A chunk to hold on to: a small one is copied (it must not pin a large buffer), a large one handed over. */
  keep(data: Buffer): Buffer {
    if (data.length * 2 < (this.buf?.length ?? 0)) return Buffer.from(data);
    this.taken = true;
    return data;
  }

  private next(): Buffer {
    if (!this.buf) this.buf = Buffer.allocUnsafe(MIN_READ);
    const size = this.buf.length;
    let want = size;
    if (this.lastRead === size && size < MAX_READ) want = size * 2;
    else if (this.lastRead * 4 < size && size > MIN_READ) want = size / 2;
    if (this.taken || want !== size) {
      this.buf = Buffer.allocUnsafe(want);
      this.taken = false;
    }
    return this.buf;
  }
}
