import { FieldlabError } from '../../simulators/common/errors.js';
import type { AdapterContext } from './adapter.js';

/**
 * An Azure endpoint (iot-hub, dps) has three doors, mqtts (8883), amqps (5671) and https (443, also MQTT and
 * AMQP over WebSocket): `port` would move only the first, so `port: 443` would put MQTT on 443 and leave
 * https elsewhere. Refused, with the form that says which door gets which port.
 */
export function refuseMainPort(ctx: AdapterContext, type: string): void {
  if (!ctx.publicPort) return;
  throw new FieldlabError(
    'E_BAD_OPTIONS',
    `${ctx.name} (${type}): port: ${ctx.publicPort} does not say which endpoint: a ${type} serves mqtts, amqps and https`,
    { hint: 'give each endpoint its port instead: ports: { https: 443, mqtts: 8883, amqps: 5671 }' },
  );
}
