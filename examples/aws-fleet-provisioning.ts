/**
 * A device's first boot with AWS IoT fleet provisioning by claim through a global endpoint name, as in
 * the Route 53 + configurable endpoints article: resolve the global name (geolocation routing picks the
 * region), connect there with the claim certificate (aws-iot-device-sdk-v2, mTLS), run
 * CreateKeysAndCertificate + RegisterThing, and print the thing and region it got.
 *
 *   GLOBAL_ENDPOINT   e.g. global.iot.example.com (a CNAME by location)
 *   DNS_SERVER        optional: the resolver to ask, address:port; the program then resolves the name
 *                     itself and connects to the regional name. Without it the SDK is given
 *                     GLOBAL_ENDPOINT unchanged and resolves it as the operating system does (resolv.conf)
 *   DEVICE_ADDRESS    with DNS_SERVER: the device's own address (queries leave from it: its location)
 *   IOT_PORT          MQTT over TLS port (default 8883)
 *   CLAIM_CERT, CLAIM_KEY, IOT_CA   PEM files
 *   TEMPLATE          provisioning template (default FleetTemplate); SERIAL (default 0001)
 */
import { Resolver } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { iot, iotidentity, mqtt } from 'aws-iot-device-sdk-v2';

const env = process.env;
function fail(message: string): never {
  process.stderr.write(`aws-fleet-provisioning: ${message}\n`);
  process.exit(1);
}
function need(name: string): string {
  return env[name] || fail(`${name} is not set`);
}
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_r, rej) => setTimeout(() => rej(new Error(`${what}: ETIMEDOUT after ${ms} ms`)), ms)),
  ]);
}

async function resolveRegionEndpoint(): Promise<string> {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([need('DNS_SERVER')]);
  resolver.setLocalAddress(need('DEVICE_ADDRESS'));
  const name = need('GLOBAL_ENDPOINT');
  try {
    const [target] = await resolver.resolveCname(name);
    if (!target) fail(`DNS ENODATA for ${name}`);
    return target;
  } catch (err) {
    // c-ares codes: ENODATA (no record for this location), ESERVFAIL, ETIMEOUT, ENOTFOUND.
    fail(`DNS ${(err as NodeJS.ErrnoException).code ?? 'error'} for ${name}: ${(err as Error).message}`);
  }
}

async function main(): Promise<void> {
  const endpoint = env.DNS_SERVER ? await resolveRegionEndpoint() : need('GLOBAL_ENDPOINT');
  const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(
    readFileSync(need('CLAIM_CERT'), 'utf8'),
    readFileSync(need('CLAIM_KEY'), 'utf8'),
  )
    .with_certificate_authority(readFileSync(need('IOT_CA'), 'utf8'))
    .with_endpoint(endpoint)
    .with_port(Number(env.IOT_PORT ?? 8883))
    .with_client_id(`claim-${env.SERIAL ?? '0001'}`)
    .with_clean_session(true)
    .with_ping_timeout_ms(3000)
    .build();
  const conn = new mqtt.MqttClient().new_connection(config);
  await within(conn.connect(), 15_000, `MQTT connect to ${endpoint}`);
  const identity = new iotidentity.IotIdentityClient(conn);
  const QOS = mqtt.QoS.AtLeastOnce;
  const template = env.TEMPLATE ?? 'FleetTemplate';

  const keys = await within(
    new Promise<iotidentity.model.CreateKeysAndCertificateResponse>((resolve, reject) => {
      void (async () => {
        await identity.subscribeToCreateKeysAndCertificateAccepted({}, QOS, (e, r) =>
          e || !r ? reject(e) : resolve(r),
        );
        await identity.subscribeToCreateKeysAndCertificateRejected({}, QOS, (_e, r) =>
          reject(new Error(`create rejected: ${JSON.stringify(r)}`)),
        );
        await identity.publishCreateKeysAndCertificate({}, QOS);
      })().catch(reject);
    }),
    10_000,
    'CreateKeysAndCertificate',
  );
  const thing = await within(
    new Promise<iotidentity.model.RegisterThingResponse>((resolve, reject) => {
      void (async () => {
        await identity.subscribeToRegisterThingAccepted({ templateName: template }, QOS, (e, r) =>
          e || !r ? reject(e) : resolve(r),
        );
        await identity.subscribeToRegisterThingRejected({ templateName: template }, QOS, (_e, r) =>
          reject(new Error(`register rejected: ${JSON.stringify(r)}`)),
        );
        await identity.publishRegisterThing(
          {
            templateName: template,
            certificateOwnershipToken: keys.certificateOwnershipToken!,
            parameters: { SerialNumber: env.SERIAL ?? '0001' },
          },
          QOS,
        );
      })().catch(reject);
    }),
    10_000,
    'RegisterThing',
  );
  process.stdout.write(
    `registered ${thing.thingName} via ${endpoint} ${JSON.stringify(thing.deviceConfiguration ?? {})}\n`,
  );
  await within(conn.disconnect(), 3000, 'disconnect').catch(() => undefined);
}

main().then(
  () => process.exit(0),
  (err: unknown) => fail(err instanceof Error ? err.message : String(err)),
);
