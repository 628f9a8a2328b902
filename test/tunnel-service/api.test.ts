import {
  CloseTunnelCommand,
  DescribeTunnelCommand,
  IoTSecureTunnelingServiceException,
  LimitExceededException,
  ListTagsForResourceCommand,
  ListTunnelsCommand,
  OpenTunnelCommand,
  ResourceNotFoundException,
  RotateTunnelAccessTokenCommand,
  TagResourceCommand,
  UntagResourceCommand,
} from '@aws-sdk/client-iotsecuretunneling';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { start } from '../../simulators/tunnel-service/index.js';
import { type Lab, startLab, stopLab } from './helpers.js';

let lab: Lab | undefined;
afterEach(async () => {
  await stopLab(lab);
  lab = undefined;
});

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('tunnel-service management API (AWS SDK v3 client)', () => {
  it('opens and describes a tunnel', async () => {
    lab = await startLab({ region: 'eu-west-1' });
    const before = Date.now();
    const open = await lab.sdk.send(
      new OpenTunnelCommand({
        description: 'ssh to thing-1',
        tags: [{ key: 'env', value: 'lab' }],
        destinationConfig: { thingName: 'thing-1', services: ['SSH'] },
        timeoutConfig: { maxLifetimeTimeoutMinutes: 30 },
      }),
    );
    expect(open.tunnelArn).toBe(`arn:aws:iot:eu-west-1:123456789012:tunnel/${open.tunnelId}`);
    expect(open.sourceAccessToken).toBeTruthy();
    expect(open.destinationAccessToken).not.toBe(open.sourceAccessToken);

    const { tunnel } = await lab.sdk.send(new DescribeTunnelCommand({ tunnelId: open.tunnelId }));
    expect(tunnel?.status).toBe('OPEN');
    expect(tunnel?.description).toBe('ssh to thing-1');
    expect(tunnel?.destinationConfig).toEqual({ thingName: 'thing-1', services: ['SSH'] });
    expect(tunnel?.timeoutConfig).toEqual({ maxLifetimeTimeoutMinutes: 30 });
    expect(tunnel?.tags).toEqual([{ key: 'env', value: 'lab' }]);
    expect(tunnel?.sourceConnectionState?.status).toBe('DISCONNECTED');
    expect(tunnel?.destinationConnectionState?.status).toBe('DISCONNECTED');
    // Epoch-second timestamps become Dates in the SDK.
    expect(tunnel?.createdAt).toBeInstanceOf(Date);
    expect(tunnel?.createdAt?.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(tunnel?.lastUpdatedAt).toBeInstanceOf(Date);
  });

  it('defaults the lifetime to 720 minutes and records the access key id', async () => {
    lab = await startLab();
    const seen: Array<string | undefined> = [];
    lab.svc.events.onEvent('api-request', (e) => seen.push(e.accessKeyId));
    const open = await lab.sdk.send(new OpenTunnelCommand({}));
    const { tunnel } = await lab.sdk.send(new DescribeTunnelCommand({ tunnelId: open.tunnelId }));
    expect(tunnel?.timeoutConfig?.maxLifetimeTimeoutMinutes).toBe(720);
    expect(seen).toEqual(['AKIDLAB', 'AKIDLAB']);
  });

  it('lists tunnels with a thing filter and pagination', async () => {
    lab = await startLab();
    const ids: string[] = [];
    for (const thing of ['a', 'b', 'a', 'a']) {
      const o = await lab.sdk.send(
        new OpenTunnelCommand({ destinationConfig: { thingName: thing, services: ['SSH'] } }),
      );
      ids.push(o.tunnelId as string);
    }
    const all = await lab.sdk.send(new ListTunnelsCommand({}));
    expect(all.tunnelSummaries).toHaveLength(4);
    expect(all.nextToken).toBeUndefined();
    const page1 = await lab.sdk.send(new ListTunnelsCommand({ thingName: 'a', maxResults: 2 }));
    expect(page1.tunnelSummaries).toHaveLength(2);
    expect(page1.nextToken).toBeTruthy();
    const page2 = await lab.sdk.send(
      new ListTunnelsCommand({ thingName: 'a', maxResults: 2, nextToken: page1.nextToken }),
    );
    expect(page2.tunnelSummaries).toHaveLength(1);
    expect(page2.nextToken).toBeUndefined();
    const listed = [...(page1.tunnelSummaries ?? []), ...(page2.tunnelSummaries ?? [])].map(
      (t) => t.tunnelId,
    );
    expect(listed.sort()).toEqual([ids[0], ids[2], ids[3]].sort());
    expect(page1.tunnelSummaries?.[0]?.status).toBe('OPEN');
  });

  it('closes a tunnel, and deletes it with the delete flag', async () => {
    lab = await startLab();
    const closed: string[] = [];
    lab.svc.events.onEvent('tunnel-closed', (e) => closed.push(e.reason));
    const a = await lab.sdk.send(new OpenTunnelCommand({}));
    const b = await lab.sdk.send(new OpenTunnelCommand({}));
    await lab.sdk.send(new CloseTunnelCommand({ tunnelId: a.tunnelId }));
    const { tunnel } = await lab.sdk.send(new DescribeTunnelCommand({ tunnelId: a.tunnelId }));
    expect(tunnel?.status).toBe('CLOSED');
    await lab.sdk.send(new CloseTunnelCommand({ tunnelId: b.tunnelId, delete: true }));
    const err = await rejection(lab.sdk.send(new DescribeTunnelCommand({ tunnelId: b.tunnelId })));
    expect(err).toBeInstanceOf(ResourceNotFoundException);
    expect(closed).toEqual(['api', 'deleted']);
    expect(lab.svc.stats()).toMatchObject({ tunnelsOpen: 0, tunnelsClosed: 2 });
  });

  it('rotates tokens per client mode', async () => {
    lab = await startLab();
    const open = await lab.sdk.send(new OpenTunnelCommand({}));
    const src = await lab.sdk.send(
      new RotateTunnelAccessTokenCommand({ tunnelId: open.tunnelId, clientMode: 'SOURCE' }),
    );
    expect(src.tunnelArn).toBe(open.tunnelArn);
    expect(src.sourceAccessToken).toBeTruthy();
    expect(src.sourceAccessToken).not.toBe(open.sourceAccessToken);
    expect(src.destinationAccessToken).toBeUndefined();
    const all = await lab.sdk.send(
      new RotateTunnelAccessTokenCommand({
        tunnelId: open.tunnelId,
        clientMode: 'ALL',
        destinationConfig: { thingName: 't2', services: ['RDP'] },
      }),
    );
    expect(all.sourceAccessToken).not.toBe(src.sourceAccessToken);
    expect(all.destinationAccessToken).not.toBe(open.destinationAccessToken);
    expect(lab.svc.tokens(open.tunnelId as string)).toEqual({
      source: all.sourceAccessToken,
      destination: all.destinationAccessToken,
    });
    const { tunnel } = await lab.sdk.send(new DescribeTunnelCommand({ tunnelId: open.tunnelId }));
    expect(tunnel?.destinationConfig).toEqual({ thingName: 't2', services: ['RDP'] });
  });

  it('tags, untags and lists tags', async () => {
    lab = await startLab();
    const open = await lab.sdk.send(new OpenTunnelCommand({ tags: [{ key: 'a', value: '1' }] }));
    const resourceArn = open.tunnelArn as string;
    await lab.sdk.send(
      new TagResourceCommand({
        resourceArn,
        tags: [
          { key: 'a', value: '2' },
          { key: 'b', value: '3' },
        ],
      }),
    );
    let tags = await lab.sdk.send(new ListTagsForResourceCommand({ resourceArn }));
    expect(tags.tags).toEqual([
      { key: 'a', value: '2' },
      { key: 'b', value: '3' },
    ]);
    await lab.sdk.send(new UntagResourceCommand({ resourceArn, tagKeys: ['a'] }));
    tags = await lab.sdk.send(new ListTagsForResourceCommand({ resourceArn }));
    expect(tags.tags).toEqual([{ key: 'b', value: '3' }]);
  });

  it('throws ResourceNotFoundException for unknown tunnels and ARNs', async () => {
    lab = await startLab();
    const sdk = lab.sdk;
    for (const p of [
      sdk.send(new DescribeTunnelCommand({ tunnelId: 'nope' })),
      sdk.send(new CloseTunnelCommand({ tunnelId: 'nope' })),
      sdk.send(new RotateTunnelAccessTokenCommand({ tunnelId: 'nope', clientMode: 'ALL' })),
      sdk.send(new ListTagsForResourceCommand({ resourceArn: 'arn:aws:iot:us-east-1:1:tunnel/x' })),
    ]) {
      const err = await rejection(p);
      expect(err).toBeInstanceOf(ResourceNotFoundException);
      expect(err.name).toBe('ResourceNotFoundException');
      expect((err as ResourceNotFoundException).$metadata.httpStatusCode).toBe(400);
    }
  });

  it('throws LimitExceededException past maxOpenTunnels', async () => {
    lab = await startLab({ maxOpenTunnels: 1 });
    const first = await lab.sdk.send(new OpenTunnelCommand({}));
    const err = await rejection(lab.sdk.send(new OpenTunnelCommand({})));
    expect(err).toBeInstanceOf(LimitExceededException);
    // A closed tunnel no longer counts.
    await lab.sdk.send(new CloseTunnelCommand({ tunnelId: first.tunnelId }));
    await expect(lab.sdk.send(new OpenTunnelCommand({}))).resolves.toHaveProperty('tunnelId');
  });

  it('answers InvalidRequestException for bad input', async () => {
    lab = await startLab();
    const bad = [
      new OpenTunnelCommand({ destinationConfig: { thingName: 't', services: ['a', 'b', 'c', 'd'] } }),
      new OpenTunnelCommand({ timeoutConfig: { maxLifetimeTimeoutMinutes: 721 } }),
      new OpenTunnelCommand({ timeoutConfig: { maxLifetimeTimeoutMinutes: 0 } }),
    ];
    for (const cmd of bad) {
      const err = await rejection(lab.sdk.send(cmd));
      expect(err).toBeInstanceOf(IoTSecureTunnelingServiceException);
      expect(err.name).toBe('InvalidRequestException');
    }
  });

  it('speaks AWS JSON 1.1 on the wire', async () => {
    lab = await startLab();
    const url = endpointOf(lab.svc, 'api').url as string;
    const res = await fetch(`${url}/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'IoTSecuredTunneling.DescribeTunnel',
      },
      body: JSON.stringify({ tunnelId: 'missing' }),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('x-amzn-errortype')).toBe('ResourceNotFoundException');
    expect(await res.json()).toMatchObject({ __type: 'ResourceNotFoundException' });
    const unknown = await fetch(`${url}/`, {
      method: 'POST',
      headers: { 'x-amz-target': 'IoTSecuredTunneling.Nope' },
      body: '{}',
    });
    expect(unknown.headers.get('x-amzn-errortype')).toBe('UnknownOperationException');
    const garbage = await fetch(`${url}/`, {
      method: 'POST',
      headers: { 'x-amz-target': 'IoTSecuredTunneling.OpenTunnel' },
      body: '{nope',
    });
    expect(garbage.headers.get('x-amzn-errortype')).toBe('SerializationException');
  });

  it('answers UnknownOperationException (404) for names on Object.prototype, and keeps serving', async () => {
    lab = await startLab();
    const url = endpointOf(lab.svc, 'api').url as string;
    const body = JSON.stringify({ tunnelId: 'x', echo: 'me' });
    for (const target of [
      'IoTSecuredTunneling.__proto__',
      'IoTSecuredTunneling.constructor',
      'IoTSecuredTunneling.toString',
      'IoTSecuredTunneling.hasOwnProperty',
      'IoTSecuredTunneling.__defineGetter__',
      'IoTSecuredTunneling.',
      'OpenTunnel',
      'Other.OpenTunnel',
    ]) {
      const res = await fetch(`${url}/`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': target },
        body,
      });
      // AWS Common Errors: UnknownOperationException, HTTP 404.
      expect([target, res.status]).toEqual([target, 404]);
      expect(res.headers.get('x-amzn-errortype')).toBe('UnknownOperationException');
      const json = (await res.json()) as { __type: string; message: string };
      expect(json.__type).toBe('UnknownOperationException');
      expect(json.message).toContain('The action or operation requested is invalid');
    }
    const noTarget = await fetch(`${url}/`, { method: 'POST', body: '{}' });
    expect(noTarget.status).toBe(404);
    // The service still works.
    await expect(lab.sdk.send(new OpenTunnelCommand({}))).resolves.toHaveProperty('tunnelId');
  });

  it('stops idempotently and frees both ports', async () => {
    const l = await startLab();
    const api = endpointOf(l.svc, 'api');
    const data = endpointOf(l.svc, 'data');
    expect(api.port).not.toBe(data.port);
    expect(data.url).toBe(`ws://127.0.0.1:${data.port}`);
    await stopLab(l);
    await l.svc.stop();
    await expect(fetch(`${api.url}/`, { method: 'POST' })).rejects.toThrow();
  });

  it('validates options at start', async () => {
    await expect(start({ maxOpenTunnels: -1 })).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
  });
});
