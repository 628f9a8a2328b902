/**
 * The unit that flows through a toxic chain: a chunk of bytes with the time it entered the relay
 * (Toxiproxy's `StreamChunk`), or the end of the stream (the peer's FIN, or a close a toxic asked for).
 */
export interface Chunk {
  data: Buffer;
  /** performance.now() when the bytes entered the relay; latency toxics move it forward. */
  at: number;
}

/** End of one direction: `eof` = the peer half-closed; `toxic` = a toxic closes the connection. */
export interface End {
  end: 'eof' | 'toxic';
  at: number;
}

export type Item = Chunk | End;

export function isEnd(item: Item): item is End {
  return 'end' in item;
}

/** Bytes a channel holds before it asks its writer to wait (backpressure). */
export const HIGH_WATER = 1024 * 1024;

/**
 * A single-reader queue of chunks between two stages of a toxic chain. `push` never blocks (so an item
 * handed over is never lost), but reports when the channel is over its high-water mark; the writer then
 * waits on `space()` before pushing more. That is how backpressure travels from the socket being written
 * back to the socket being read.
 */
export class Channel {
  private items: Item[] = [];
  private bytes = 0;
  private reader: ((item: Item | undefined) => void) | undefined;
  private spaceWaiters: Array<() => void> = [];

  constructor(readonly highWater = HIGH_WATER) {}

  get size(): number {
    return this.items.length;
  }

  /** Queues an item (or hands it to a waiting reader). False when the writer should wait on `space()`. */
  push(item: Item): boolean {
    const reader = this.reader;
    if (reader) {
      this.reader = undefined;
      reader(item);
      return true;
    }
    this.items.push(item);
    if (!isEnd(item)) this.bytes += item.data.length;
    return this.bytes < this.highWater;
  }

  /** The next item, if one is queued. */
  shift(): Item | undefined {
    const item = this.items.shift();
    if (item && !isEnd(item)) {
      this.bytes -= item.data.length;
      if (this.bytes < this.highWater) this.releaseSpace();
    }
    return item;
  }

  /** Waits for the next item; resolves undefined when `wake()` is called first. */
  next(): Promise<Item | undefined> {
    const item = this.shift();
    if (item) return Promise.resolve(item);
    return new Promise((resolve) => {
      this.reader = resolve;
    });
  }

  /** Resolves a pending `next()` with undefined (the reader was interrupted). */
  wake(): void {
    const reader = this.reader;
    this.reader = undefined;
    reader?.(undefined);
  }

  /** Resolves once the channel is under its high-water mark. */
  space(): Promise<void> {
    if (this.bytes < this.highWater) return Promise.resolve();
    return new Promise((resolve) => this.spaceWaiters.push(resolve));
  }

  /** Removes and returns every queued item, oldest first (used when a stage leaves the chain). */
  takeAll(): Item[] {
    const out = this.items;
    this.items = [];
    this.bytes = 0;
    this.releaseSpace();
    return out;
  }

  private releaseSpace(): void {
    if (this.spaceWaiters.length === 0) return;
    const waiters = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const w of waiters) w();
  }
}
