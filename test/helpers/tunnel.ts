import type { IncomingMessage } from 'node:http';
import { IoTSecureTunnelingClient, OpenTunnelCommand } from '@aws-sdk/client-iotsecuretunneling';
import WebSocket from 'ws';
import {
  encodeMessage,
  FrameDecoder,
  type TunnelMessage,
  type TunnelMessageInput,
} from '../../simulators/tunnel-service/index.js';
import { within } from './within.js';

export const V2 = 'aws.iot.securetunneling-2.0';

/** The AWS SDK client pointed at a lab tunnel service's management API (any static credentials). */
export function tunnelSdk(apiUrl: string): IoTSecureTunnelingClient {
  return new IoTSecureTunnelingClient({
    endpoint: apiUrl,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDLAB', secretAccessKey: 'lab' },
    maxAttempts: 1,
  });
}

/** Opens a tunnel for a thing's services; no services: OpenTunnel without a destination config. */
export async function openTunnelWith(sdk: IoTSecureTunnelingClient, services: string[], thingName: string) {
  const input = services.length > 0 ? { destinationConfig: { thingName, services } } : {};
  const out = await sdk.send(new OpenTunnelCommand(input));
  return {
    tunnelId: out.tunnelId as string,
    source: out.sourceAccessToken as string,
    destination: out.destinationAccessToken as string,
  };
}

/** A raw WebSocket tunnel client that queues decoded messages. */
export class RawPeer {
  readonly messages: TunnelMessage[] = [];
  private readonly decoder = new FrameDecoder();
  private waiters: Array<() => void> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Headers of the 101 answer. */
  upgradeHeaders: IncomingMessage['headers'] = {};

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.messages.push(...this.decoder.push(data));
      for (const w of this.waiters.splice(0)) w();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        for (const w of this.waiters.splice(0)) w();
      }),
    );
    ws.on('error', () => {});
  }

  /** Resolves with the close code and reason (bounded wait). */
  whenClosed(ms = 3000): Promise<{ code: number; reason: string }> {
    return within(this.closed, ms, 'the socket to close');
  }

  send(...msgs: TunnelMessageInput[]): void {
    this.ws.send(Buffer.concat(msgs.map((m) => encodeMessage(m))));
  }

  /** The next queued message (bounded wait). */
  async next(ms = 3000): Promise<TunnelMessage> {
    const deadline = Date.now() + ms;
    while (this.messages.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED)
        throw new Error('socket closed while waiting for a message');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no message within ${ms} ms`);
      await within(new Promise<void>((r) => this.waiters.push(r)), left, 'a tunnel message').catch(() => {});
    }
    return this.messages.shift() as TunnelMessage;
  }

  close(): void {
    this.ws.terminate();
  }
}

export interface ConnectOpts {
  mode?: 'source' | 'destination';
  token?: string;
  cookie?: string;
  clientToken?: string;
  protocols?: string[];
  path?: string;
  headers?: Record<string, string>;
  /** Trusted roots for wss. */
  ca?: string[];
}

/** Opens a data plane WebSocket; resolves to the peer, or rejects with `{status}` on an HTTP refusal. */
export function connect(lab: { dataUrl: string }, o: ConnectOpts): Promise<RawPeer> {
  const path = o.path ?? `/tunnel?local-proxy-mode=${o.mode ?? 'source'}`;
  const headers: Record<string, string> = { ...o.headers };
  if (o.token !== undefined) headers['access-token'] = o.token;
  if (o.cookie !== undefined) headers.cookie = `awsiot-tunnel-token=${o.cookie}`;
  if (o.clientToken !== undefined) headers['client-token'] = o.clientToken;
  const ws = new WebSocket(`${lab.dataUrl}${path}`, o.protocols ?? [V2], {
    headers,
    perMessageDeflate: false,
    ...(o.ca ? { ca: o.ca } : {}),
  });
  let upgradeHeaders: IncomingMessage['headers'] = {};
  ws.once('upgrade', (res: IncomingMessage) => {
    upgradeHeaders = res.headers;
  });
  const p = new Promise<RawPeer>((resolve, reject) => {
    ws.once('open', () => {
      const peer = new RawPeer(ws);
      peer.upgradeHeaders = upgradeHeaders;
      resolve(peer);
    });
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode }));
      res.resume();
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
  return within(p, 5000, 'the WebSocket handshake');
}
