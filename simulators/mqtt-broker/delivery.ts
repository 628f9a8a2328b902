import type { Aedes } from 'aedes';

/**
 * Why a bare aedes (1.2, and still 2.0.0-beta.1 with mqemitter 7.1) dies under an open-loop QoS 0 flood (aedes' benchmarks/sender.js + receiver.js,
 * then both disconnect):
 *
 *   publisher ──▶ aedes client ──▶ mqemitter.emit ──(current ≥ concurrency 100)──▶ _messageQueue (unbounded)
 *
 * 1. aedes calls its `nextBatch` on every `'readable'` event as well as when a batch completes, so a
 *    flooding publisher keeps being read while deliveries are pending: mqemitter's queue grows to tens
 *    of thousands of messages while the subscriber is slower than the publisher.
 * 2. When the subscriber goes away, every queued message has no match; fastparallel then completes it
 *    synchronously, and mqemitter's `released()` starts the next queued message from inside the previous
 *    one's completion (`released → _do → _parallel → released → ...`): one stack frame triple per queued
 *    message, so a queue of a few thousand throws `RangeError: Maximum call stack size exceeded`,
 *    which escapes as an uncaught exception and kills the process.
 *
 * The guard below bounds that recursion: past a small depth, the next queued message starts on a fresh
 * stack (setImmediate). Its concurrency slot stays reserved meanwhile, so newer messages keep queueing
 * behind it and delivery order is unchanged.
 */
const MAX_SYNC_DEPTH = 64;

interface MqInternals {
  current: number;
  _do(message: unknown, callback: unknown): unknown;
}

/** Patches this broker's mqemitter instance (not the package) against the recursion described above. */
export function guardDeliveryRecursion(broker: Aedes): void {
  const mq = (broker as Aedes & { mq: MqInternals }).mq;
  const original = mq._do;
  let depth = 0;
  mq._do = function guardedDo(this: MqInternals, message: unknown, callback: unknown) {
    if (depth >= MAX_SYNC_DEPTH) {
      this.current++; // keep the slot: later emits queue behind this message
      setImmediate(() => {
        this.current--;
        original.call(this, message, callback);
      });
      return this;
    }
    depth++;
    try {
      return original.call(this, message, callback);
    } finally {
      depth--;
    }
  };
}
