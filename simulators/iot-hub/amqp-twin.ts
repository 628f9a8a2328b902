import rhea, { type Message, type Sender } from 'rhea';
import type { HubCore } from './core.js';

/**
 * Twins and direct methods over AMQP, as the device SDKs use them (one link pair per feature, both on the
 * same address; `com.microsoft:channel-correlation-id` names the pair):
 *   /devices/<d>[/modules/<m>]/twin
 *     device → hub  message-annotations operation GET | PATCH (resource /properties/reported, JSON body)
 *                   | PUT / DELETE (resource /notifications/twin/properties/desired), correlation-id
 *     hub → device  same correlation-id, message-annotations status (int) and version; GET: the twin JSON;
 *                   desired patches (after PUT): a message with the patch JSON and no correlation-id
 *   /devices/<d>[/modules/<m>]/methods/devicebound
 *     hub → device  application-properties IoThub-methodname, correlation-id (uuid), JSON body
 *     device → hub  same correlation-id, application-properties IoThub-status, JSON body
 */
export const SERVICE_LINK = /^\/devices\/([^/]+)(?:\/modules\/([^/]+))?\/(twin|methods\/devicebound)\/?$/;

const DESIRED_RESOURCE = '/notifications/twin/properties/desired';

function jsonBody(body: unknown): unknown {
  const bytes =
    typeof body === 'object' && body !== null && 'content' in body
      ? (body as { content: unknown }).content
      : body;
  const text = Buffer.isBuffer(bytes) ? bytes.toString() : typeof bytes === 'string' ? bytes : '';
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

const data = (v: unknown) => rhea.message.data_section(Buffer.from(v === undefined ? '' : JSON.stringify(v)));

/** A twin link pair of one identity on one connection: requests in, answers and desired patches out. */
export class AmqpTwinChannel {
  private stopDesired: (() => void) | undefined;

  constructor(
    private readonly core: HubCore,
    private readonly identity: string,
    private readonly sender: Sender,
    private readonly transport: 'amqp' | 'amqp-ws',
  ) {}

  /** One request from the device's twin sender link. */
  request(msg: Message): void {
    const annotations = (msg.message_annotations ?? {}) as Record<string, unknown>;
    const operation = String(annotations.operation ?? '');
    const resource = String(annotations.resource ?? '');
    const reply = (status: number, body?: unknown, version?: number) => {
      const m: Message = {
        message_annotations: {
          status: rhea.types.wrap_int(status),
          ...(version !== undefined ? { version: rhea.types.wrap_long(version) } : {}),
        },
        body: data(body),
      };
      if (msg.correlation_id !== undefined) m.correlation_id = msg.correlation_id;
      this.sender.send(m);
    };
    if (operation === 'GET') {
      reply(200, this.core.twins.get(this.identity));
    } else if (operation === 'PATCH' && resource === '/properties/reported') {
      const patch = jsonBody(msg.body);
      if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) {
        reply(400, { errorCode: 400004, message: 'Invalid JSON patch.' });
        return;
      }
      const version = this.core.twins.patchReported(this.identity, patch as Record<string, unknown>);
      reply(204, undefined, version);
    } else if (operation === 'PUT' && resource === DESIRED_RESOURCE) {
      this.stopDesired ??= this.core.twins.onDesired(this.identity, (patch) => {
        if (this.sender.is_open()) {
          this.sender.send({
            message_annotations: { version: rhea.types.wrap_long(patch.$version) },
            body: data(patch),
          });
        }
      });
      this.core.events.emitEvent('listening', {
        deviceId: this.identity,
        transport: this.transport,
        feature: 'desired',
      });
      reply(200);
    } else if (operation === 'DELETE' && resource === DESIRED_RESOURCE) {
      this.close();
      reply(200);
    } else {
      reply(400, { errorCode: 400027, message: `Unsupported operation ${operation} ${resource}` });
    }
  }

  /** The link pair or the connection went away. */
  close(): void {
    this.stopDesired?.();
    this.stopDesired = undefined;
  }
}

/** Registers a methods sender link as the identity's method sink; returns its removal. */
export function attachMethodLink(
  core: HubCore,
  identity: string,
  sender: Sender,
  transport: 'amqp' | 'amqp-ws',
): () => void {
  const release = core.twins.addMethodSink(identity, (requestId, methodName, payload) => {
    if (!sender.is_open()) return false;
    sender.send({
      correlation_id: rhea.string_to_uuid(requestId),
      application_properties: { 'IoThub-methodname': methodName },
      body: rhea.message.data_section(payload),
    });
    return true;
  });
  core.events.emitEvent('listening', { deviceId: identity, transport, feature: 'methods' });
  return release;
}

/** A device's answer on its methods sender link. */
export function methodAnswer(core: HubCore, msg: Message): void {
  const id = msg.correlation_id;
  const requestId = Buffer.isBuffer(id) && id.length === 16 ? rhea.uuid_to_string(id) : String(id ?? '');
  const status = Number(msg.application_properties?.['IoThub-status']);
  core.twins.answer(requestId, Number.isInteger(status) ? status : 500, jsonBody(msg.body));
}
