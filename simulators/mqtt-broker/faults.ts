import type { Aedes, AuthenticateError, Client, PublishPacket } from 'aedes';
import { z } from 'zod';

/**
 * Protocol faults the broker applies on demand (at start through the `faults` option, at run time
 * through `handle.setFault()`):
 * - `refuseConnect`: every CONNECT gets a CONNACK with this return code (MQTT 3.1.1 §3.2.2.3: 1 bad
 *   protocol version, 2 identifier rejected, 3 server unavailable, 4 bad username or password,
 *   5 not authorized), then the connection closes.
 * - `withholdPuback`: a client's QoS 1 PUBLISH is delivered to subscribers but never acknowledged, so
 *   the publisher's publish never completes (a lost PUBACK).
 * - `dropAfterMessages`: a connection is cut (TCP close, no DISCONNECT) once its client has sent this
 *   many PUBLISH packets.
 */
export const brokerFaultsSchema = z
  .object({
    refuseConnect: z.number().int().min(1).max(5).optional(),
    withholdPuback: z.boolean().optional(),
    dropAfterMessages: z.number().int().min(1).optional(),
  })
  .strict();

export type BrokerFaults = z.infer<typeof brokerFaultsSchema>;

export type FaultKind = 'refuse-connect' | 'withhold-puback' | 'drop-connection';

/** Emitted each time a fault acts on a client. */
export interface FaultEvent {
  kind: FaultKind;
  clientId: string;
  detail: string;
}

type FaultClient = Client & { fieldlabPublishes?: number };

/**
 * Wraps the broker's authenticate and authorizePublish (after the persona hooks are installed) with the
 * fault checks; `current()` is read on every packet, so a runtime change applies to the next one.
 */
export function installFaults(
  broker: Aedes,
  current: () => BrokerFaults,
  onFault: (event: FaultEvent) => void,
): void {
  const authenticate = broker.authenticate;
  broker.authenticate = (client, username, password, done) => {
    const code = current().refuseConnect;
    if (code === undefined) return authenticate.call(broker, client, username, password, done);
    onFault({ kind: 'refuse-connect', clientId: client.id, detail: `CONNACK return code ${code}` });
    const err = Object.assign(new Error(`fault: refused with return code ${code}`), { returnCode: code });
    done(err as AuthenticateError, false);
  };

  const authorizePublish = broker.authorizePublish;
  broker.authorizePublish = (client, packet, cb) => {
    if (!client) return authorizePublish.call(broker, client, packet, cb);
    const faults = current();
    const c = client as FaultClient;
    c.fieldlabPublishes = (c.fieldlabPublishes ?? 0) + 1;
    if (faults.dropAfterMessages !== undefined && c.fieldlabPublishes >= faults.dropAfterMessages) {
      onFault({
        kind: 'drop-connection',
        clientId: client.id,
        detail: `connection dropped after ${c.fieldlabPublishes} PUBLISH packets`,
      });
      client.conn.destroy();
      return; // the packet dies with the connection
    }
    if (faults.withholdPuback && packet.qos === 1) {
      return authorizePublish.call(broker, client, packet, (err) => {
        if (err) return cb(err);
        onFault({
          kind: 'withhold-puback',
          clientId: client.id,
          detail: `PUBACK for message ${packet.messageId} on ${packet.topic} withheld`,
        });
        // Route the message as the broker would, but never let aedes write the PUBACK: its publish
        // handler only acknowledges after this callback, which is never called.
        const copy: PublishPacket = { ...packet, qos: 1, dup: false, retain: packet.retain };
        broker.publish(copy, () => undefined);
      });
    }
    authorizePublish.call(broker, client, packet, cb);
  };
}
