import { z } from 'zod';

/**
 * A cloud's connect throttle: at most `perSecond` CONNECT requests in any one-second window, counted as
 * the clouds count them, every request whether accepted or not. A request over the limit gets CONNACK
 * 0x03 "server unavailable" (MQTT 3.1.1 §3.2.2.3) and the connection is closed. A fleet that retries in
 * lockstep keeps the window full and few get in; one that backs off with jitter gets under it.
 *
 * Documented defaults (per account / hub, adjustable by the cloud on request):
 * - AWS IoT Core: "Connect requests per second per account" 500 in most regions (100 in smaller ones), and
 *   1 connect per second per client id (AWS IoT Core endpoints and quotas).
 * - Azure IoT Hub: device connections S1 the higher of 100/s or 12/s per unit, S2 120/s per unit, S3
 *   6,000/s per unit (IoT Hub quotas and throttling).
 */
export const connectRateSchema = z
  .object({
    /** CONNECT requests allowed in any one-second window (accepted and refused ones count). */
    perSecond: z.number().int().min(1).max(1_000_000),
  })
  .strict();

export type ConnectRate = z.input<typeof connectRateSchema>;

/** Window resolution: ten 100 ms slots make the one-second window (bounded memory). */
const SLOTS = 10;
const SLOT_MS = 100;

export class ConnectThrottle {
  private readonly counts = new Array<number>(SLOTS).fill(0);
  private slot = 0;
  private slotStart = 0;
  /** Requests refused so far. */
  refused = 0;

  constructor(
    private readonly limit: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Counts a CONNECT request; true when it is within the limit. */
  admit(): boolean {
    const t = this.now();
    const steps = Math.min(SLOTS, Math.floor((t - this.slotStart) / SLOT_MS));
    for (let i = 0; i < steps; i++) {
      this.slot = (this.slot + 1) % SLOTS;
      this.counts[this.slot] = 0;
    }
    if (steps > 0) this.slotStart += Math.floor((t - this.slotStart) / SLOT_MS) * SLOT_MS;
    const inWindow = this.counts.reduce((a, b) => a + b, 0);
    this.counts[this.slot] = (this.counts[this.slot] ?? 0) + 1;
    if (inWindow < this.limit) return true;
    this.refused++;
    return false;
  }
}
