/**
 * Device and module twins and direct methods, whatever the transport (Microsoft Learn, "Understand and use
 * device twins in IoT Hub", "Understand and invoke direct methods from IoT Hub"):
 *   - a twin has `desired` and `reported` properties, each with its own `$version`, bumped by every patch;
 *     a patch merges into the properties, a `null` value removes a property (JSON merge patch, RFC 7396);
 *   - a desired patch goes to every connection of the identity that listens for it;
 *   - a method call goes to one connection that listens for methods, and the answer (status + JSON payload)
 *     comes back under the request id; 404 when no connection listens, 504 when none answers in time.
 */

import { randomUUID } from 'node:crypto';

export type Properties = Record<string, unknown>;

export interface Twin {
  desired: Properties & { $version: number };
  reported: Properties & { $version: number };
}

export interface MethodResult {
  status: number;
  payload: unknown;
}

/** A connection that listens for desired-property patches. */
export type DesiredListener = (patch: Properties & { $version: number }) => void;

/** A connection that takes method calls; false when it cannot take this one now. */
export type MethodSink = (requestId: string, methodName: string, payload: Buffer) => boolean;

/** Longest a method call may wait for its answer (the service allows 5..300 s). */
const MAX_METHOD_TIMEOUT_MS = 300_000;

/** RFC 7396 merge of `patch` into `target` (in place). */
function mergePatch(target: Properties, patch: Properties): void {
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue; // metadata ($version...) is the service's
    if (v === null) delete target[k];
    else if (typeof v === 'object' && !Array.isArray(v)) {
      const cur = target[k];
      const next: Properties =
        typeof cur === 'object' && cur !== null && !Array.isArray(cur) ? { ...cur } : {};
      mergePatch(next, v as Properties);
      target[k] = next;
    } else target[k] = v;
  }
}

export class TwinStore {
  private readonly twins = new Map<string, Twin>();
  private readonly desiredListeners = new Map<string, Set<DesiredListener>>();
  private readonly methodSinks = new Map<string, Set<MethodSink>>();
  private readonly pending = new Map<string, { resolve(r: MethodResult): void; timer: NodeJS.Timeout }>();

  /** The identity's twin (created empty on first use), as a copy. */
  get(identity: string): Twin {
    return structuredClone(this.twinOf(identity));
  }

  /** Applies a reported-properties patch from the device; returns the new reported `$version`. */
  patchReported(identity: string, patch: Properties): number {
    const twin = this.twinOf(identity);
    mergePatch(twin.reported, patch);
    twin.reported.$version++;
    return twin.reported.$version;
  }

  /** Applies a desired-properties patch (the solution side) and sends it to the identity's listeners. */
  patchDesired(identity: string, patch: Properties): number {
    const twin = this.twinOf(identity);
    mergePatch(twin.desired, patch);
    twin.desired.$version++;
    const sent = { ...structuredClone(patch), $version: twin.desired.$version };
    for (const l of this.desiredListeners.get(identity) ?? []) l(sent);
    return twin.desired.$version;
  }

  /** Adds a listener for desired patches; returns its removal. */
  onDesired(identity: string, listener: DesiredListener): () => void {
    return addTo(this.desiredListeners, identity, listener);
  }

  /** Adds a connection that takes method calls; returns its removal. */
  addMethodSink(identity: string, sink: MethodSink): () => void {
    return addTo(this.methodSinks, identity, sink);
  }

  /** Calls a method on one of the identity's connections. */
  invoke(identity: string, methodName: string, payload: unknown, timeoutMs = 30_000): Promise<MethodResult> {
    // A uuid: AMQP carries it as the method call's correlation-id (uuid type), MQTT as `$rid`.
    const requestId = randomUUID();
    const body = Buffer.from(JSON.stringify(payload ?? null));
    const sinks = [...(this.methodSinks.get(identity) ?? [])];
    return new Promise<MethodResult>((resolve) => {
      const timer = setTimeout(
        () => {
          this.pending.delete(requestId);
          resolve({
            status: 504,
            payload: { errorCode: 504101, message: 'Timed out waiting for the response from device.' },
          });
        },
        Math.min(Math.max(timeoutMs, 1), MAX_METHOD_TIMEOUT_MS),
      );
      this.pending.set(requestId, { resolve, timer });
      if (!sinks.some((sink) => sink(requestId, methodName, body))) {
        this.answer(requestId, 404, {
          errorCode: 404103,
          message: 'Timed out waiting for device to connect.',
        });
      }
    });
  }

  /** A device's answer to a method call; false for an unknown (or already answered) request id. */
  answer(requestId: string, status: number, payload: unknown): boolean {
    const p = this.pending.get(requestId);
    if (!p) return false;
    this.pending.delete(requestId);
    clearTimeout(p.timer);
    p.resolve({ status, payload });
    return true;
  }

  /** Ends every pending call (504) and forgets listeners: the hub is stopping. */
  close(): void {
    for (const id of [...this.pending.keys()])
      this.answer(id, 504, { errorCode: 504101, message: 'Hub stopped.' });
    this.desiredListeners.clear();
    this.methodSinks.clear();
  }

  private twinOf(identity: string): Twin {
    let twin = this.twins.get(identity);
    if (!twin) {
      twin = { desired: { $version: 1 }, reported: { $version: 1 } };
      this.twins.set(identity, twin);
    }
    return twin;
  }
}

function addTo<T>(map: Map<string, Set<T>>, key: string, value: T): () => void {
  const set = map.get(key) ?? new Set<T>();
  map.set(key, set);
  set.add(value);
  return () => {
    set.delete(value);
    if (set.size === 0 && map.get(key) === set) map.delete(key);
  };
}
