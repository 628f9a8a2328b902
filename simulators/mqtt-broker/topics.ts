import type { Aedes } from 'aedes';
import { sharedFilterProblem } from './shared-subscriptions.js';

/**
 * MQTT 3.1.1 §4.7 topic rules: what is wrong with a topic name (PUBLISH, will topic) or a topic filter
 * (SUBSCRIBE), or undefined when it is valid. aedes (1.2, and still 2.0.0-beta.1) checks filters with off-by-one gaps (`a+`, `+a`,
 * `a/+b`, `a#` and `++` pass its check) and does not check will topics at all.
 */

export function topicNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'is empty'; // [MQTT-4.7.3-1]
  if (name.includes('\u0000')) return 'contains U+0000'; // [MQTT-4.7.3-2]
  if (/[+#]/.test(name)) return 'contains a wildcard (+ or #)'; // [MQTT-4.7.1-1], [MQTT-3.3.2-2]
  return undefined;
}

export function topicFilterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'is empty'; // [MQTT-4.7.3-1]
  if (filter.includes('\u0000')) return 'contains U+0000'; // [MQTT-4.7.3-2]
  const levels = filter.split('/');
  for (const [i, level] of levels.entries()) {
    // [MQTT-4.7.1-3]: + must occupy an entire level
    if (level.includes('+') && level !== '+') return `has + in "${level}": it must occupy an entire level`;
    // [MQTT-4.7.1-2]: # must be alone in its level, and that level the last
    if (level.includes('#') && level !== '#') return `has # in "${level}": it must occupy an entire level`;
    if (level === '#' && i !== levels.length - 1) return 'has # before the last level';
  }
  return undefined;
}

/**
 * Closes the connection of a client that subscribes to an invalid filter, as aedes does for the filters
 * it catches and as mosquitto does: 3.1.1 gives a malformed filter no SUBACK code (0x80 is the server's
 * refusal of a valid one), so it is a protocol violation and the server closes [MQTT-4.8.0-1]. Wraps the
 * broker's authorizeSubscribe, so the check runs before any persona policy.
 */
export function refuseInvalidFilters(
  broker: Aedes,
  onViolation: (clientId: string, reason: string) => void,
): void {
  const authorizeSubscribe = broker.authorizeSubscribe;
  broker.authorizeSubscribe = (client, sub, cb) => {
    const problem = topicFilterProblem(sub.topic) ?? sharedFilterProblem(sub.topic);
    if (!problem) return authorizeSubscribe.call(broker, client, sub, cb);
    const reason = `the topic filter ${JSON.stringify(sub.topic)} ${problem}`;
    onViolation(client.id, reason);
    cb(new Error(reason)); // aedes closes the connection on a subscribe error
  };
}
