import { iot, mqtt } from 'aws-iot-device-sdk-v2';

/**
 * A device connection with aws-iot-device-sdk-v2 (MQTT 3.1.1, mTLS from memory, `ca` as the trusted root)
 * to the simulator on localhost:`port`, not yet connected. The SDK's reconnect waits 30 s, longer than a
 * test: a dropped connection stays dropped.
 */
export function sdkMtlsConnection(
  ca: string,
  port: number,
  clientId: string,
  certPem: string,
  keyPem: string,
): mqtt.MqttClientConnection {
  const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(certPem, keyPem)
    .with_certificate_authority(ca)
    .with_endpoint('localhost')
    .with_port(port)
    .with_client_id(clientId)
    .with_clean_session(true)
    .with_reconnect_min_sec(30)
    .with_reconnect_max_sec(30)
    .with_ping_timeout_ms(3000)
    .build();
  return new mqtt.MqttClient().new_connection(config);
}

/** A promise with its settle functions outside (for SDK callbacks). */
export function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
