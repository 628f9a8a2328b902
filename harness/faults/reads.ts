/** Smallest and largest read buffer of a socket the relay opens. */
const MIN_READ = 16 * 1024;
const MAX_READ = 1024 * 1024;

/**
 * Reads of a socket the relay opens, through net's `onread` (sockets it accepts cannot have one): into a
 * buffer reused from read to read, so a chunk costs no allocation and no stream machinery, and a read can
 * take up to 1 MiB where Node's own reads stop at 64 KiB. Fresh buffers double after a read that filled
 * its buffer and halve after one that used less than a quarter, so an idle connection holds 16 KiB.
 *
 * A chunk that outlives its callback (a write the kernel did not take at once, a chunk queued for a
 * toxic) is handed over: it keeps its bytes, and the next read goes to the rest of the same buffer
 * (chunks held together share one allocation), or to a fresh buffer when too little is left.
 */
export class ReusedReads {
  /** Receives each chunk; the chunk is only valid during the call unless `keep`/`handOver` says so. */
  handler: ((data: Buffer) => void) | undefined;
  /** Where the next read goes (allocated when the socket first asks: a connection that never dials holds none). */
  private region: Buffer | undefined;
  private size = MIN_READ;
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

  /** The chunk stays referenced after the callback (e.g. by a pending write): never reuse its bytes. */
  handOver(): void {
    this.taken = true;
  }

  /** A chunk to hold on to past the callback (queued for a toxic). */
  keep(data: Buffer): Buffer {
    this.taken = true;
    return data;
  }

  private next(): Buffer {
    const r = this.region;
    let next: Buffer;
    if (!r) next = Buffer.allocUnsafe(this.size);
    else {
      if (this.lastRead === r.length && this.size < MAX_READ) this.size *= 2;
      else if (this.lastRead * 4 < r.length && this.size > MIN_READ) this.size /= 2;
      if (this.taken) {
        const rest = r.subarray(this.lastRead);
        next = rest.length >= MIN_READ ? rest : Buffer.allocUnsafe(this.size);
      } else if (r.length > this.size || r.length * 2 < this.size) next = Buffer.allocUnsafe(this.size);
      else next = r;
    }
    this.taken = false;
    this.region = next;
    return next;
  }
}
