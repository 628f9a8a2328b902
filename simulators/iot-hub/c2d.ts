import { randomUUID } from 'node:crypto';
import { FieldlabError } from '../common/errors.js';

/** A cloud-to-device message waiting for (or on its way to) a device. */
export interface C2dMessage {
  messageId: string;
  body: Buffer;
  properties: Record<string, string>;
  /** Delivery attempts so far (HTTP abandon and link loss put a message back). */
  attempts: number;
  /** A module input message: the input it is for (`devices/<d>/modules/<m>/inputs/<inputName>/`). */
  inputName?: string;
  /** An edge route's priority (0 first, 9 last): a waiting message goes ahead of lower-priority ones. */
  priority?: number;
  /** Epoch ms after which a waiting message is dropped (an edge route's time-to-live). */
  expiresAt?: number;
}

/** What a queued message may carry besides its body and properties. */
export type QueuedExtras = Pick<C2dMessage, 'inputName' | 'priority' | 'expiresAt'>;

/** Something that can deliver to one device now: an AMQP link with credit, an MQTT subscription. */
export interface C2dSink {
  readonly transport: string;
  /** Tries to deliver; false when the sink cannot take it now (no credit, gone). */
  deliver(msg: C2dMessage): boolean;
}

/**
 * Per-device C2D queues (and, with the same mechanics, per-module input queues). A message goes to the first
 * live sink of its device (AMQP receiver link, MQTT subscription); with none, it waits for one, or for an
 * HTTP poll (`take`), as the hub's queue does. `maxDepth` bounds each queue: `enqueue` beyond it throws.
 */
export class C2dQueues {
  private readonly queues = new Map<string, C2dMessage[]>();
  private readonly sinks = new Map<string, Set<C2dSink>>();
  /** HTTP: messages handed out under a lock token, until completed, rejected or abandoned. */
  private readonly locked = new Map<string, { deviceId: string; msg: C2dMessage }>();

  constructor(
    private readonly onSent: (deviceId: string, transport: string, msg: C2dMessage) => void,
    private readonly maxDepth = Number.POSITIVE_INFINITY,
    private readonly onExpired: (deviceId: string, msg: C2dMessage) => void = () => undefined,
  ) {}

  enqueue(
    deviceId: string,
    body: Buffer,
    properties: Record<string, string> = {},
    extras: QueuedExtras = {},
  ): C2dMessage {
    const q = this.queueOf(deviceId);
    if (q.length >= this.maxDepth) {
      throw new FieldlabError(
        'E_QUEUE_FULL',
        `iot-hub: ${deviceId} already has ${q.length} messages waiting (the most it keeps)`,
        { hint: 'connect the device or module so it takes them, or send fewer' },
      );
    }
    const msg: C2dMessage = { messageId: randomUUID(), body, properties, attempts: 0 };
    for (const k of ['inputName', 'priority', 'expiresAt'] as const) {
      if (extras[k] !== undefined) Object.assign(msg, { [k]: extras[k] });
    }
    // After every waiting message of the same or a higher priority (no priority: plain FIFO).
    const rank = (m: C2dMessage) => m.priority ?? 0;
    let at = q.length;
    while (at > 0 && rank(q[at - 1]!) > rank(msg)) at--;
    q.splice(at, 0, msg);
    this.flush(deviceId);
    return msg;
  }

  addSink(deviceId: string, sink: C2dSink): void {
    const set = this.sinks.get(deviceId) ?? new Set<C2dSink>();
    this.sinks.set(deviceId, set);
    set.add(sink);
    this.flush(deviceId);
  }

  removeSink(deviceId: string, sink: C2dSink): void {
    this.sinks.get(deviceId)?.delete(sink);
  }

  /** Delivers what is queued to the device's sinks, in order, while they take it. */
  flush(deviceId: string): void {
    const q = this.queues.get(deviceId);
    const sinks = this.sinks.get(deviceId);
    if (!q || !sinks) return;
    this.dropExpired(deviceId, q);
    while (q.length > 0) {
      const msg = q[0]!;
      const sink = [...sinks].find((s) => s.deliver(msg));
      if (!sink) return;
      q.shift();
      msg.attempts++;
      this.onSent(deviceId, sink.transport, msg);
    }
  }

  /** HTTP poll: the next message under a fresh lock token, or undefined. */
  take(deviceId: string): { msg: C2dMessage; lockToken: string } | undefined {
    const q = this.queues.get(deviceId);
    if (q) this.dropExpired(deviceId, q);
    const msg = q?.shift();
    if (!msg) return undefined;
    msg.attempts++;
    const lockToken = randomUUID();
    this.locked.set(lockToken, { deviceId, msg });
    this.onSent(deviceId, 'https', msg);
    return { msg, lockToken };
  }

  /** HTTP feedback; `abandon` puts the message back at the head. Undefined for an unknown lock token. */
  settle(
    deviceId: string,
    lockToken: string,
    outcome: 'complete' | 'reject' | 'abandon',
  ): C2dMessage | undefined {
    const held = this.locked.get(lockToken);
    if (!held || held.deviceId !== deviceId) return undefined;
    this.locked.delete(lockToken);
    if (outcome === 'abandon') this.queueOf(deviceId).unshift(held.msg);
    return held.msg;
  }

  /** Puts a message back (a link went away before the device settled it). */
  requeue(deviceId: string, msg: C2dMessage): void {
    this.queueOf(deviceId).unshift(msg);
    this.flush(deviceId);
  }

  pending(deviceId: string): number {
    return this.queues.get(deviceId)?.length ?? 0;
  }

  /** Drops waiting messages past their time-to-live. */
  private dropExpired(deviceId: string, q: C2dMessage[], now = Date.now()): void {
    for (let i = q.length - 1; i >= 0; i--) {
      const m = q[i]!;
      if (m.expiresAt !== undefined && m.expiresAt < now) {
        q.splice(i, 1);
        this.onExpired(deviceId, m);
      }
    }
  }

  private queueOf(deviceId: string): C2dMessage[] {
    const q = this.queues.get(deviceId) ?? [];
    this.queues.set(deviceId, q);
    return q;
  }
}
