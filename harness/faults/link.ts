import type { Socket } from 'node:net';
import { Channel, type Item, isEnd } from './channel.js';
import type { ReusedReads } from './reads.js';
import type { ToxicConnection } from './stub.js';
import { ToxicStub } from './stub.js';
import { isCleanupToxic, type Toxic } from './toxic.js';

/** Socket buffer mark: fewer pause/resume turns per MB than Node's 16 KiB default on bulk transfers. */
export const SOCKET_HIGH_WATER = 256 * 1024;

/** A toxic running in a link: its name, instance, stub and the promise of its `pipe`. */
interface Stage {
  name: string;
  toxic: Toxic;
  stub: ToxicStub;
  done: Promise<void>;
}

/** What a link tells its connection. */
export interface LinkOwner {
  /** Bytes written to the sink. */
  delivered(bytes: number): void;
  /** The sink was ended because a toxic closed the connection; close everything once it is flushed. */
  toxicEnd(): void;
  /** The sink is gone while data was still to be written: the connection cannot go on. */
  sinkLost(): void;
}

/**
 * One direction of a relayed connection: reads `source`, passes the bytes through the toxics in order,
 * writes `sink`. Until the first toxic arrives the sockets are piped directly (the fast path); after
 * that, with no toxics and nothing queued, chunks are still written straight to the sink.
 *
 *   source ─► stage[0].input ─ toxic ─► stage[1].input ─ toxic ─► exit ─► writer ─► sink
 *
 * Adding and removing stages is serialised; a removed stage is interrupted, writes out what it held,
 * and the items still queued in front of it move on to the next channel, in order.
 *
 * A source the relay opened comes with `reads` (its `onread`): chunks then arrive through it, written
 * straight to the sink while there is no toxic, with no pipe and no per-chunk allocation.
 */
export class Link {
  private readonly stages: Stage[] = [];
  private readonly exit = new Channel();
  private writerBusy = false;
  private pauses = 0;
  private ended = false;
  private stopped = false;
  private ops: Promise<void> = Promise.resolve();
  /** The byte counter while the sockets are piped directly (the fast path). */
  private piped: ((data: Buffer) => void) | undefined;

  constructor(
    private readonly source: Socket,
    private readonly sink: Socket,
    private readonly owner: LinkOwner,
    private readonly reads?: ReusedReads,
  ) {}

  /**
   * Starts reading the source and writing the sink. With no toxic yet, the sockets are piped directly
   * (`pipe` handles backpressure and passes the FIN on); the first toxic switches to the chain.
   */
  start(): void {
    if (this.reads) {
      this.reads.handler = (data) => this.onRead(data);
      this.listen();
    } else if (this.stages.length === 0) {
      this.piped = (data: Buffer) => this.owner.delivered(data.length);
      this.source.on('data', this.piped);
      this.source.pipe(this.sink);
    } else this.listen();
    void this.runWriter();
  }

  private listen(): void {
    if (!this.reads) this.source.on('data', (data: Buffer) => this.onData(data));
    this.source.on('end', () => this.onEnd());
    // The relay accepts with pauseOnConnect (nothing is read before the upstream is there), and
    // unpipe() leaves the source paused.
    if (this.pauses === 0) this.source.resume();
  }

  /** Leaves the direct pipe for the toxic chain; bytes not yet read stay in the source, in order. */
  private unpipe(): void {
    const counter = this.piped;
    if (!counter) return;
    this.piped = undefined;
    this.source.unpipe(this.sink);
    this.source.off('data', counter);
    // pipe() already ended the sink if the source had ended: nothing is left to carry.
    if (this.source.readableEnded) this.ended = true;
    else this.listen();
  }

  /** Stops relaying: no more reads are acted on, stages are interrupted (used when the connection dies). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.reads) this.reads.handler = undefined;
    if (this.piped) this.source.unpipe(this.sink);
    for (const s of this.stages) s.stub.interrupt();
    this.exit.wake();
  }

  /** Inserts a toxic at `index` (default: the end, as Toxiproxy appends). */
  add(name: string, toxic: Toxic, conn: ToxicConnection, index?: number): Promise<void> {
    return this.serial(() => {
      this.unpipe();
      const at = index === undefined ? this.stages.length : Math.min(index, this.stages.length);
      const input = new Channel();
      const output = this.stages[at]?.stub.input ?? this.exit;
      const stub = new ToxicStub(input, output, conn);
      const prev = this.stages[at - 1];
      // Items already past the insertion point stay ahead of anything the new stage writes.
      if (prev) prev.stub.output = input;
      const stage: Stage = { name, toxic, stub, done: Promise.resolve() };
      this.stages.splice(at, 0, stage);
      stage.done = this.stopped ? Promise.resolve() : runPipe(toxic, stub);
    });
  }

  /** Removes a toxic without losing data: returns its index (or -1 when it was not in this link). */
  remove(name: string): Promise<number> {
    let index = -1;
    return this.serial(async () => {
      index = this.stages.findIndex((s) => s.name === name);
      const stage = this.stages[index];
      if (!stage) return;
      stage.stub.interrupt();
      await stage.done;
      if (isCleanupToxic(stage.toxic)) stage.toxic.cleanup();
      const next = stage.stub.output;
      for (const item of stage.stub.input.takeAll()) next.push(item);
      const prev = this.stages[index - 1];
      if (prev) prev.stub.output = next;
      this.stages.splice(index, 1);
    }).then(() => index);
  }

  /** Runs the cleanup of every stage (the connection is closing). */
  cleanup(): void {
    for (const s of this.stages) if (isCleanupToxic(s.toxic)) s.toxic.cleanup();
  }

  private serial(op: () => void | Promise<void>): Promise<void> {
    const run = this.ops.then(op);
    this.ops = run.catch(() => {});
    return run;
  }

  private get direct(): boolean {
    return this.stages.length === 0 && this.exit.size === 0 && !this.writerBusy;
  }

  /** A chunk from `reads`: valid during this call only, unless handed over or kept. */
  private onRead(data: Buffer): void {
    const reads = this.reads;
    if (this.stopped || !reads) return;
    if (this.direct) {
      this.owner.delivered(data.length);
      const ok = this.sink.write(data);
      // The kernel took it all at once unless something is left queued on the sink.
      if (this.sink.writableLength > 0) reads.handOver();
      if (!ok) this.pauseUntil(drained(this.sink));
      return;
    }
    this.onData(reads.keep(data));
  }

  private onData(data: Buffer): void {
    if (this.stopped) return;
    if (this.direct) {
      this.owner.delivered(data.length);
      if (!this.sink.write(data)) this.pauseUntil(drained(this.sink));
      return;
    }
    const entry = this.stages[0]?.stub.input ?? this.exit;
    if (!entry.push({ data, at: performance.now() })) this.pauseUntil(entry.space());
  }

  private onEnd(): void {
    if (this.stopped) return;
    if (this.direct) {
      this.ended = true;
      this.sink.end();
      return;
    }
    const entry = this.stages[0]?.stub.input ?? this.exit;
    entry.push({ end: 'eof', at: performance.now() });
  }

  private pauseUntil(ready: Promise<void>): void {
    this.pauses++;
    this.source.pause();
    void ready.then(() => {
      this.pauses--;
      if (this.pauses === 0 && !this.stopped) this.source.resume();
    });
  }

  /** Writes what leaves the last stage to the sink, waiting for the socket to drain (backpressure). */
  private async runWriter(): Promise<void> {
    for (;;) {
      const item: Item | undefined = this.exit.shift() ?? (await this.exit.next());
      if (item === undefined || this.stopped || this.ended) return;
      if (this.sink.destroyed) {
        this.owner.sinkLost();
        return;
      }
      this.writerBusy = true;
      if (isEnd(item)) {
        this.ended = true;
        if (item.end === 'toxic') this.sink.end(() => this.owner.toxicEnd());
        else this.sink.end();
        return;
      }
      this.owner.delivered(item.data.length);
      if (!this.sink.write(item.data)) await drained(this.sink);
      this.writerBusy = false;
    }
  }
}

async function runPipe(toxic: Toxic, stub: ToxicStub): Promise<void> {
  try {
    await toxic.pipe(stub);
  } catch {
    // A failing toxic must not wedge the link: it behaves as removed, data behind it flows on.
  }
}

/** Resolves when the socket drains or closes (a closed sink never drains). */
function drained(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}
