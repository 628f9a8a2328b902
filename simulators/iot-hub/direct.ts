import type { Aedes } from 'aedes';

/**
 * Publishes to one connected client only (aedes `Client#publish`), not to every subscriber of the topic:
 * request/response topics (`$dps/registrations/res/#`, `$iothub/twin/res/#`) are shared by all devices,
 * and the real services answer only the device that asked. False when the client is not connected.
 */
export function publishTo(broker: Aedes, clientId: string, topic: string, payload: string | Buffer): boolean {
  const clients = (
    broker as unknown as { clients: Record<string, { publish(p: unknown, cb: () => void): void }> }
  ).clients;
  const client = clients[clientId];
  if (!client) return false;
  client.publish(
    { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false },
    () => undefined,
  );
  return true;
}
