/**
 * An example device connectivity module, the kind the field articles describe: it reads its upstream
 * protocol and proxy the way IoT Edge does (`UpstreamProtocol` = Mqtt | MqttWs, `https_proxy`) and sends
 * one telemetry message (QoS 1) to its cloud MQTT endpoint. Exits 0 when the broker acknowledged it.
 *
 *   UPSTREAM_PROTOCOL  Mqtt (MQTT over TLS, 8883) or MqttWs (MQTT over WebSocket, 443)
 *   MQTT_HOST          the cloud endpoint's host name
 *   DEVICE_ID          client id (default: device-1)
 *   https_proxy        http://user:pass@proxy:port (optional); Mqtt is then tunnelled with CONNECT
 *   NODE_EXTRA_CA_CERTS / MQTT_CA   the root the device trusts
 *
 * Behind a proxy that only allows 443 (Squid's SSL_ports), Mqtt fails and MqttWs works: the seed's
 * "use MqttWs/AmqpWs when 8883/5671 are blocked".
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { HttpsProxyAgent } from 'https-proxy-agent';
import mqtt, { type IClientOptions } from 'mqtt';

const protocol = process.env.UPSTREAM_PROTOCOL ?? 'Mqtt';
const host = process.env.MQTT_HOST;
const deviceId = process.env.DEVICE_ID ?? 'device-1';
const proxy = process.env.https_proxy ?? process.env.HTTPS_PROXY;
const caFile = process.env.MQTT_CA ?? process.env.NODE_EXTRA_CA_CERTS;
const ca = caFile ? [readFileSync(caFile, 'utf8')] : undefined;

function fail(msg: string): never {
  process.stderr.write(`mqtt-device: ${msg}\n`);
  process.exit(1);
}

if (!host) fail('MQTT_HOST is not set');
if (protocol !== 'Mqtt' && protocol !== 'MqttWs')
  fail(`UPSTREAM_PROTOCOL must be Mqtt or MqttWs, not ${protocol}`);

/** Opens a CONNECT tunnel through the proxy to host:port, then TLS over it. */
function tunnelledTls(proxyUrl: string, target: string, port: number): Promise<Duplex> {
  const p = new URL(proxyUrl);
  const headers: Record<string, string> = { host: `${target}:${port}` };
  if (p.username) {
    const cred = `${decodeURIComponent(p.username)}:${decodeURIComponent(p.password)}`;
    headers['proxy-authorization'] = `Basic ${Buffer.from(cred).toString('base64')}`;
  }
  return new Promise((resolve, reject) => {
    const req = request({
      host: p.hostname,
      port: Number(p.port || 80),
      method: 'CONNECT',
      path: `${target}:${port}`,
      headers,
    });
    req.once('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`proxy refused CONNECT ${target}:${port}: ${res.statusCode} ${res.statusMessage}`));
        return;
      }
      const tls = tlsConnect({ socket, servername: target, ...(ca ? { ca } : {}), ALPNProtocols: ['mqtt'] });
      tls.once('secureConnect', () => resolve(tls));
      tls.once('error', reject);
    });
    req.once('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  const common: IClientOptions = {
    clientId: deviceId,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...(ca ? { ca } : {}),
  };
  let client: mqtt.MqttClient;
  if (protocol === 'MqttWs') {
    const url = `wss://${host}:443/mqtt`;
    client = mqtt.connect(url, {
      ...common,
      ...(proxy ? { wsOptions: { agent: new HttpsProxyAgent(proxy, ca ? { ca } : {}) } } : {}),
    });
  } else if (proxy) {
    const stream = await tunnelledTls(proxy, host!, 8883);
    client = new mqtt.MqttClient(() => stream, common);
  } else {
    client = mqtt.connect(`mqtts://${host}:8883`, { ...common, servername: host! });
  }
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
    client.once('close', () => reject(new Error('connection closed before CONNACK')));
  });
  await client.publishAsync(`devices/${deviceId}/messages/events`, JSON.stringify({ temperature: 21.5 }), {
    qos: 1,
  });
  await client.endAsync();
  process.stdout.write(`mqtt-device: telemetry acknowledged over ${protocol}\n`);
}

main().catch((err: Error) => fail(err.message));
