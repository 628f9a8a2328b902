import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Emitter, TunnelServiceEvents } from './events.js';
import type { ResolvedTunnelServiceOptions } from './options.js';
import type { SigV4Verifier } from './sigv4.js';
import {
  type DestinationConfig,
  PEER_MODES,
  type PeerMode,
  type Tag,
  type Tunnel,
  type TunnelRegistry,
} from './tunnels.js';

/**
 * The management API, wire-compatible with `@aws-sdk/client-iotsecuretunneling` v3: AWS JSON 1.1
 * (`POST /`, `X-Amz-Target: IoTSecuredTunneling.<Operation>`, `Content-Type: application/x-amz-json-1.1`),
 * timestamps as epoch seconds, errors as `x-amzn-ErrorType` + `{"__type", "message"}` (the SDK's
 * `loadRestJsonErrorCode` reads the header first).
 */

/** What the API needs from the data plane. */
export interface ApiHooks {
  /** Ends both sides' sockets and marks the tunnel closed. */
  closeTunnel(t: Tunnel, reason: TunnelServiceEvents['tunnel-closed']['reason']): void;
  /** Disconnects the sockets that used a now revoked token. */
  disconnectMode(t: Tunnel, mode: PeerMode, reason: string): void;
  /** Starts the tunnel's max-lifetime timer. */
  armLifetime(t: Tunnel): void;
}

class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const tagSchema = z.object({ key: z.string().min(1).max(128), value: z.string().max(256) });
const destinationConfigSchema = z.object({
  thingName: z.string().min(1).max(128).optional(),
  services: z
    .array(
      z
        .string()
        .min(1)
        .max(128)
        .regex(/^[a-zA-Z0-9:_-]+$/),
    )
    .min(1)
    .max(3)
    .refine((s) => new Set(s).size === s.length, 'services must be unique'),
});
const openSchema = z.object({
  description: z.string().max(128).optional(),
  tags: z.array(tagSchema).min(1).max(200).optional(),
  destinationConfig: destinationConfigSchema.optional(),
  timeoutConfig: z
    .object({ maxLifetimeTimeoutMinutes: z.number().int().min(1).max(720).optional() })
    .optional(),
});
const tunnelIdSchema = z.object({ tunnelId: z.string().min(1) });
const closeSchema = z.object({ tunnelId: z.string().min(1), delete: z.boolean().optional() });
const listSchema = z.object({
  thingName: z.string().min(1).max(128).optional(),
  maxResults: z.number().int().min(1).max(100).optional(),
  nextToken: z.string().optional(),
});
const rotateSchema = z.object({
  tunnelId: z.string().min(1),
  clientMode: z.enum(['SOURCE', 'DESTINATION', 'ALL']),
  destinationConfig: destinationConfigSchema.optional(),
});
const arnSchema = z.object({ resourceArn: z.string().min(1) });
const tagResourceSchema = z.object({ resourceArn: z.string().min(1), tags: z.array(tagSchema).max(200) });
const untagSchema = z.object({ resourceArn: z.string().min(1), tagKeys: z.array(z.string()).max(200) });

function parse<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  throw new ApiError('InvalidRequestException', `${where}${issue?.message ?? 'invalid request'}`);
}

const epoch = (ms: number) => ms / 1000;

/** The `connection state` DescribeTunnel shows for one side. */
function connectionState(t: Tunnel, mode: PeerMode) {
  return {
    status: t.peers[mode] ? 'CONNECTED' : 'DISCONNECTED',
    lastUpdatedAt: epoch(t.slots[mode].lastUpdatedAt),
  };
}

function describe(t: Tunnel) {
  return {
    tunnelId: t.tunnelId,
    tunnelArn: t.tunnelArn,
    status: t.status,
    sourceConnectionState: connectionState(t, 'source'),
    destinationConnectionState: connectionState(t, 'destination'),
    ...(t.description !== undefined ? { description: t.description } : {}),
    ...(t.destinationConfig ? { destinationConfig: t.destinationConfig } : {}),
    timeoutConfig: { maxLifetimeTimeoutMinutes: t.maxLifetimeTimeoutMinutes },
    tags: t.tags,
    createdAt: epoch(t.createdAt),
    lastUpdatedAt: epoch(t.lastUpdatedAt),
  };
}

function summary(t: Tunnel) {
  return {
    tunnelId: t.tunnelId,
    tunnelArn: t.tunnelArn,
    status: t.status,
    ...(t.description !== undefined ? { description: t.description } : {}),
    createdAt: epoch(t.createdAt),
    lastUpdatedAt: epoch(t.lastUpdatedAt),
  };
}

function mergeTags(existing: Tag[], added: Tag[]): Tag[] {
  const map = new Map(existing.map((t) => [t.key, t.value]));
  for (const t of added) map.set(t.key, t.value);
  return [...map].map(([key, value]) => ({ key, value }));
}

/** Handles management API requests for one registry. */
export function createApiHandler(
  registry: TunnelRegistry,
  opts: ResolvedTunnelServiceOptions,
  events: Emitter,
  hooks: ApiHooks,
  verifier?: SigV4Verifier,
): (req: IncomingMessage, res: ServerResponse) => void {
  const arnPrefix = `arn:aws:iot:${opts.region}:${opts.accountId}:tunnel/`;

  const find = (tunnelId: string): Tunnel => {
    const t = registry.tunnels.get(tunnelId);
    if (!t) throw new ApiError('ResourceNotFoundException', `Tunnel ${tunnelId} not found`);
    return t;
  };
  const findArn = (arn: string): Tunnel => {
    const t = registry.byArn(arn);
    if (!t) throw new ApiError('ResourceNotFoundException', `Resource ${arn} not found`);
    return t;
  };

  const notifyDestination = async (t: Tunnel, reason: 'opened' | 'rotated'): Promise<void> => {
    const thing = t.destinationConfig?.thingName;
    if (!opts.notify || !thing) return;
    const topic = `$aws/things/${thing}/tunnels/notify`;
    const payload = JSON.stringify({
      clientAccessToken: t.slots.destination.token,
      clientMode: 'destination',
      region: opts.region,
      services: t.destinationConfig?.services ?? [],
    });
    try {
      await opts.notify(topic, payload);
      events.emitEvent('notified', { tunnelId: t.tunnelId, thingName: thing, topic, reason });
    } catch (err) {
      events.emitEvent('notify-error', { tunnelId: t.tunnelId, topic, message: (err as Error).message });
    }
  };

  // A Map, not an object: the operation name comes from the request, and `__proto__` or `constructor`
  // must not resolve to anything on Object.prototype.
  const operations = new Map<string, (body: unknown) => Promise<unknown> | unknown>(
    Object.entries({
      OpenTunnel: async (body) => {
        const req = parse(openSchema, body);
        if (opts.maxOpenTunnels !== undefined && registry.openCount >= opts.maxOpenTunnels) {
          throw new ApiError('LimitExceededException', `open tunnel limit of ${opts.maxOpenTunnels} reached`);
        }
        const t = registry.create({
          arnPrefix,
          description: req.description,
          destinationConfig: req.destinationConfig as DestinationConfig | undefined,
          maxLifetimeTimeoutMinutes: req.timeoutConfig?.maxLifetimeTimeoutMinutes ?? 720,
          tags: req.tags ?? [],
        });
        registry.add(t);
        hooks.armLifetime(t);
        events.emitEvent('tunnel-opened', {
          tunnelId: t.tunnelId,
          ...(t.destinationConfig?.thingName ? { thingName: t.destinationConfig.thingName } : {}),
          services: t.destinationConfig?.services ?? [],
        });
        await notifyDestination(t, 'opened');
        return {
          tunnelId: t.tunnelId,
          tunnelArn: t.tunnelArn,
          sourceAccessToken: t.slots.source.token,
          destinationAccessToken: t.slots.destination.token,
        };
      },
      DescribeTunnel: (body) => ({ tunnel: describe(find(parse(tunnelIdSchema, body).tunnelId)) }),
      ListTunnels: (body) => {
        const req = parse(listSchema, body);
        const all = [...registry.tunnels.values()]
          .filter((t) => !req.thingName || t.destinationConfig?.thingName === req.thingName)
          .sort((a, b) => b.createdAt - a.createdAt);
        let start = 0;
        if (req.nextToken !== undefined) {
          start = Number(Buffer.from(req.nextToken, 'base64url').toString());
          if (!Number.isInteger(start) || start < 0) {
            throw new ApiError('InvalidRequestException', 'nextToken is not valid');
          }
        }
        const max = req.maxResults ?? 100;
        const page = all.slice(start, start + max);
        const next =
          start + max < all.length ? Buffer.from(String(start + max)).toString('base64url') : undefined;
        return { tunnelSummaries: page.map(summary), ...(next ? { nextToken: next } : {}) };
      },
      CloseTunnel: (body) => {
        const req = parse(closeSchema, body);
        const t = find(req.tunnelId);
        if (t.status === 'OPEN') hooks.closeTunnel(t, req.delete ? 'deleted' : 'api');
        if (req.delete) registry.remove(t);
        return {};
      },
      RotateTunnelAccessToken: async (body) => {
        const req = parse(rotateSchema, body);
        const t = find(req.tunnelId);
        if (t.status !== 'OPEN')
          throw new ApiError('InvalidRequestException', `Tunnel ${t.tunnelId} is closed`);
        if (req.destinationConfig && req.clientMode === 'SOURCE') {
          throw new ApiError(
            'InvalidRequestException',
            'destinationConfig needs clientMode DESTINATION or ALL',
          );
        }
        const modes: PeerMode[] =
          req.clientMode === 'ALL'
            ? [...PEER_MODES]
            : req.clientMode === 'SOURCE'
              ? ['source']
              : ['destination'];
        if (req.destinationConfig) t.destinationConfig = req.destinationConfig as DestinationConfig;
        for (const m of modes) {
          registry.rotate(t, m);
          hooks.disconnectMode(t, m, 'access token rotated');
        }
        t.lastUpdatedAt = opts.clock.now();
        events.emitEvent('tokens-rotated', { tunnelId: t.tunnelId, modes });
        if (modes.includes('destination')) await notifyDestination(t, 'rotated');
        return {
          tunnelArn: t.tunnelArn,
          ...(modes.includes('source') ? { sourceAccessToken: t.slots.source.token } : {}),
          ...(modes.includes('destination') ? { destinationAccessToken: t.slots.destination.token } : {}),
        };
      },
      TagResource: (body) => {
        const req = parse(tagResourceSchema, body);
        const t = findArn(req.resourceArn);
        t.tags = mergeTags(t.tags, req.tags);
        return {};
      },
      UntagResource: (body) => {
        const req = parse(untagSchema, body);
        const t = findArn(req.resourceArn);
        t.tags = t.tags.filter((tag) => !req.tagKeys.includes(tag.key));
        return {};
      },
      ListTagsForResource: (body) => ({ tags: findArn(parse(arnSchema, body).resourceArn).tags }),
    }),
  );

  const send = (res: ServerResponse, status: number, body: unknown, errorType?: string) => {
    const json = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(json),
      'x-amzn-requestid': randomUUID(),
      ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
    });
    res.end(json);
  };

  return (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1_048_576) chunks.push(c);
    });
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const operation = target.startsWith('IoTSecuredTunneling.') ? target.slice(20) : target;
      const auth = String(req.headers.authorization ?? '');
      const accessKeyId = /Credential=([^/,\s]+)\//.exec(auth)?.[1];
      const finish = (status: number, body: unknown, errorType?: string) => {
        send(res, status, body, errorType);
        events.emitEvent('api-request', {
          operation,
          status,
          ...(errorType ? { errorType } : {}),
          ...(accessKeyId ? { accessKeyId } : {}),
        });
      };
      const fail = (e: ApiError) => finish(e.status, { __type: e.type, message: e.message }, e.type);
      const run = async () => {
        // AWS Common Errors: UnknownOperationException, "The action or operation requested is invalid" (404).
        if (req.method !== 'POST') throw new ApiError('UnknownOperationException', 'use POST /', 404);
        if (size > 1_048_576) throw new ApiError('SerializationException', 'request body too large', 413);
        const raw = Buffer.concat(chunks);
        if (verifier) {
          const refused = await verifier.verify(req, raw);
          if (refused) {
            events.emitEvent('auth-rejected', { operation, ...refused });
            throw new ApiError(refused.errorType, refused.message, refused.status);
          }
        }
        const op = operations.get(operation);
        if (!op || !target.startsWith('IoTSecuredTunneling.')) {
          throw new ApiError(
            'UnknownOperationException',
            `The action or operation requested is invalid. Verify that the action is typed correctly. (X-Amz-Target: ${JSON.stringify(target)})`,
            404,
          );
        }
        let body: unknown = {};
        const text = raw.toString('utf8');
        if (text.trim() !== '') {
          try {
            body = JSON.parse(text);
          } catch {
            throw new ApiError('SerializationException', 'request body is not JSON');
          }
        }
        finish(200, await op(body));
      };
      run().catch((err: unknown) => {
        if (err instanceof ApiError) fail(err);
        else fail(new ApiError('InternalServerException', (err as Error).message, 500));
      });
    });
  };
}
