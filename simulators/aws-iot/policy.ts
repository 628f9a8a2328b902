/**
 * The per-certificate topic policy the persona enforces (a fixed stand-in for an IoT policy document):
 * - a thing's certificate: publish/subscribe under `things/<thingName>/...` and `$aws/things/<thingName>/...`;
 * - a claim certificate: only the fleet provisioning topics (MQTT API of the AWS IoT developer guide,
 *   "Device provisioning MQTT API");
 * - a certificate registered with `accountEvents`: also subscribe to `$aws/events/...` (reserved event topics).
 * A topic filter is allowed when every topic it can match is allowed: wildcards only after the prefix.
 */

/** Topics a claim certificate may publish to. */
const CLAIM_PUBLISH = [
  /^\$aws\/certificates\/create\/(json|cbor)$/,
  /^\$aws\/certificates\/create-from-csr\/(json|cbor)$/,
  /^\$aws\/provisioning-templates\/[^/+#]+\/provision\/(json|cbor)$/,
];

/** Topic filters a claim certificate may subscribe to (the replies of the requests above). */
const CLAIM_SUBSCRIBE = [
  /^\$aws\/certificates\/create\/(json|cbor)\/(accepted|rejected|\+)$/,
  /^\$aws\/certificates\/create-from-csr\/(json|cbor)\/(accepted|rejected|\+)$/,
  /^\$aws\/provisioning-templates\/[^/+#]+\/provision\/(json|cbor)\/(accepted|rejected|\+)$/,
];

export interface Principal {
  /** The thing attached to the certificate, if any. */
  thingName?: string;
  /** A provisioning claim certificate. */
  claim: boolean;
  /**
   * May subscribe to the account's event topics (`$aws/events/...`, e.g. certificate registrations), as the
   * policy of a backend that watches JITR/JITP does.
   */
  accountEvents?: boolean;
}

function thingPrefixes(thingName: string): string[] {
  return [`things/${thingName}/`, `$aws/things/${thingName}/`];
}

/** Whether `principal` may publish to `topic`. */
export function mayPublish(principal: Principal, topic: string): boolean {
  if (principal.claim) return CLAIM_PUBLISH.some((re) => re.test(topic));
  if (principal.thingName === undefined) return false;
  return thingPrefixes(principal.thingName).some((p) => topic.startsWith(p));
}

/**
 * Whether `principal` may subscribe to the topic filter `filter`. A shared subscription
 * (`$share/<ShareName>/<filter>`) is allowed when its filter is (the stand-in for a policy naming
 * `topicfilter/$share/<ShareName>/<filter>`).
 */
export function maySubscribe(principal: Principal, filter: string): boolean {
  const shared = /^\$share\/[^/]+\/(.+)$/.exec(filter);
  if (shared) return maySubscribe(principal, shared[1]!);
  if (principal.accountEvents && filter.startsWith('$aws/events/')) return true;
  if (principal.claim) return CLAIM_SUBSCRIBE.some((re) => re.test(filter));
  if (principal.thingName === undefined) return false;
  return thingPrefixes(principal.thingName).some(
    (p) => filter.startsWith(p) || filter === p.slice(0, -1) || filter === `${p}#`,
  );
}

/** Expands `${Name}` placeholders from `parameters`; undefined when one is missing. */
export function expandTemplate(template: string, parameters: Record<string, string>): string | undefined {
  let missing = false;
  const out = template.replace(/\$\{([^}]+)\}/g, (_m, name: string) => {
    const v = parameters[name];
    if (v === undefined) missing = true;
    return v ?? '';
  });
  return missing ? undefined : out;
}
