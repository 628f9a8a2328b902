import type { Channel, Item } from './channel.js';
import { isEnd } from './channel.js';

/**
 * What a toxic may do to the connection it sits on (the connection-level hook). Given to
 * `ConnectionToxic.onConnection` and available to `pipe` as `stub.conn`.
 */
export interface ToxicConnection {
  /** Connection id (as in the relay's events). */
  readonly id: number;
  /** True when the toxic was attached as the connection was accepted (before any upstream dial). */
  readonly fresh: boolean;
  /** Reports that the toxic acts on this connection (`toxic-applied`, once per toxic and connection). */
  applied(): void;
  /** Closes both sides now (reason `toxic`); data held in toxics is dropped. */
  close(): void;
  /** Sends a TCP RST to the client and closes the upstream side (reason `toxic`). */
  reset(): void;
  /** Never dials upstream (or leaves it unused): the client's bytes are read and dropped, nothing answers. */
  blackhole(): void;
}

/**
 * One toxic's place in one direction of one connection (Toxiproxy's `ToxicStub`): it reads items from
 * `input` and writes them to `output`. `interrupt()` asks the toxic's `pipe` to return; every wait the
 * stub offers (`read`, `write`, `sleep`) ends early when interrupted, so a toxic returns promptly. A
 * toxic that holds data must write it out before returning (data in flight is never dropped).
 */
export class ToxicStub {
  private interruptedFlag = false;
  private interruptWaiters: Array<() => void> = [];

  constructor(
    readonly input: Channel,
    /** Where this stage writes; the link rewires it when a neighbour stage is added or removed. */
    public output: Channel,
    readonly conn: ToxicConnection,
  ) {}

  get interrupted(): boolean {
    return this.interruptedFlag;
  }

  /** The next item, or undefined when interrupted. */
  read(): Promise<Item | undefined> {
    if (this.interruptedFlag) return Promise.resolve(undefined);
    const item = this.input.shift();
    if (item) return Promise.resolve(item);
    return this.input.next();
  }

  /** Hands an item on; the promise waits for room downstream (backpressure), or for an interrupt. */
  write(item: Item): Promise<void> | undefined {
    const out = this.output;
    if (out.push(item)) return undefined;
    return this.interruptedFlag ? undefined : Promise.race([out.space(), this.whenInterrupted()]);
  }

  /** Sends the end of the stream with reason `toxic`: the connection closes once it is delivered. */
  close(): void {
    this.output.push({ end: 'toxic', at: performance.now() });
  }

  /** Waits `ms`; resolves false when interrupted first. */
  sleep(ms: number): Promise<boolean> {
    if (this.interruptedFlag) return Promise.resolve(false);
    if (ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.interruptWaiters = this.interruptWaiters.filter((w) => w !== onInterrupt);
        resolve(true);
      }, ms);
      const onInterrupt = () => {
        clearTimeout(timer);
        resolve(false);
      };
      this.interruptWaiters.push(onInterrupt);
    });
  }

  /** Resolves when the stub is interrupted. */
  whenInterrupted(): Promise<void> {
    if (this.interruptedFlag) return Promise.resolve();
    return new Promise((resolve) => this.interruptWaiters.push(resolve));
  }

  /** Asks the toxic to return from `pipe` (it is being removed or replaced). */
  interrupt(): void {
    if (this.interruptedFlag) return;
    this.interruptedFlag = true;
    this.input.wake();
    const waiters = this.interruptWaiters;
    this.interruptWaiters = [];
    for (const w of waiters) w();
  }
}

/** The do-nothing pipe: forwards every item until the end of the stream or an interrupt. */
export async function forward(stub: ToxicStub): Promise<void> {
  for (;;) {
    const item = await stub.read();
    if (item === undefined) return;
    await stub.write(item);
    if (isEnd(item)) return;
  }
}
