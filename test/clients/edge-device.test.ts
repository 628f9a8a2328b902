import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { optionsFrom, redactProxy } from '../../examples/edge-device.js';
import { parseEdgeConfig } from '../../harness/clients/edge-device/config.js';
import {
  bootstrapAgentPlan,
  deployedPlans,
  identityPlan,
  protocolsOf,
} from '../../harness/clients/edge-device/derive.js';
import { parseDeployment } from '../../harness/clients/edge-device/manifest.js';
import { FieldlabError } from '../../simulators/common/errors.js';

const sample = (name: string) => readFileSync(`examples/edge/${name}`, 'utf8');
const bundleMap = new Map([['/etc/aziot/trust-bundle.pem', '/lab/inspector-root.pem']]);
const config = (name: string) => parseEdgeConfig(sample(name), bundleMap);
const hub = { hostName: 'hub.iot.example.com', deviceId: 'edge-1' };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof FieldlabError ? err.code : `not a FieldlabError: ${String(err)}`;
  }
  return undefined;
}

describe('config.toml (IoT Edge 1.4/1.5 shapes)', () => {
  it('manual provisioning: hub and device from the connection string; [agent] and [agent.env]', () => {
    const c = config('config.toml');
    expect(c.provisioning).toMatchObject({
      source: 'manual',
      hubHostName: 'hub.iot.example.com',
      deviceId: 'edge-1',
    });
    expect(c.agent).toMatchObject({
      name: 'edgeAgent',
      type: 'docker',
      image: 'mcr.microsoft.com/azureiotedge-agent:1.5',
    });
    expect(c.agent.env).toEqual({
      UpstreamProtocol: 'AmqpWs',
      https_proxy: 'http://proxy.corp.example.com:3128',
    });
    expect(c.hostname).toBe('edge-1');
  });

  it('trust_bundle_cert is a file:// URI, read where the file map says it is here', () => {
    expect(config('config.toml').trustBundleFile).toBe('/lab/inspector-root.pem');
    expect(parseEdgeConfig(sample('config.toml')).trustBundleFile).toBe('/etc/aziot/trust-bundle.pem');
  });

  it('manual provisioning by iothub_hostname, device_id and a device_id_pk', () => {
    const c = parseEdgeConfig(
      [
        '[provisioning]',
        'source = "manual"',
        'iothub_hostname = "hub.iot.example.com"',
        'device_id = "edge-9"',
        '[provisioning.authentication]',
        'method = "sas"',
        'device_id_pk = { value = "a2V5" }',
        '[agent]',
        'name = "edgeAgent"',
        'type = "docker"',
      ].join('\n'),
    );
    expect(c.provisioning).toEqual({
      source: 'manual',
      hubHostName: 'hub.iot.example.com',
      deviceId: 'edge-9',
      key: 'a2V5',
    });
    expect(c.agent.env).toEqual({});
  });

  it('DPS with a symmetric key: the global endpoint host, scope, registration id and key', () => {
    expect(config('config.dps-symmetric.toml').provisioning).toEqual({
      source: 'dps',
      globalEndpoint: 'global.dps.example.com',
      idScope: '0ne00FAB001',
      attestation: {
        method: 'symmetric_key',
        registrationId: 'edge-2',
        key: 'faeT+w2cg6LmEox9bLL/4G7Y4OV3f6Ja22y5JAIAQI8=',
      },
    });
  });

  it('DPS with X.509: identity_cert and identity_pk through the file map, no registration id', () => {
    const files = new Map([
      ['/var/aziot/certs/device-id.pem', '/lab/edge-3.pem'],
      ['/var/aziot/secrets/device-id.key.pem', '/lab/edge-3.key'],
    ]);
    expect(parseEdgeConfig(sample('config.dps-x509.toml'), files).provisioning).toEqual({
      source: 'dps',
      globalEndpoint: 'global.dps.example.com',
      idScope: '0ne00FAB001',
      attestation: { method: 'x509', certFile: '/lab/edge-3.pem', keyFile: '/lab/edge-3.key' },
    });
  });

  it('refuses what it cannot use with E_EDGE_CONFIG: bad TOML, no [agent], TPM, a path that is not a URI', () => {
    expect(codeOf(() => parseEdgeConfig('[agent\nname = 1'))).toBe('E_EDGE_CONFIG');
    expect(
      codeOf(() =>
        parseEdgeConfig('[provisioning]\nsource = "manual"\nconnection_string = "HostName=h;DeviceId=d"'),
      ),
    ).toBe('E_EDGE_CONFIG');
    const tpm = sample('config.dps-symmetric.toml').replace('method = "symmetric_key"', 'method = "tpm"');
    expect(codeOf(() => parseEdgeConfig(tpm))).toBe('E_EDGE_CONFIG');
    const bare = sample('config.toml').replace(
      'file:///etc/aziot/trust-bundle.pem',
      '/etc/aziot/trust-bundle.pem',
    );
    expect(codeOf(() => parseEdgeConfig(bare))).toBe('E_EDGE_CONFIG');
  });
});

describe('deployment manifest', () => {
  it('reads $edgeAgent properties.desired: runtime type, systemModules images and env values', () => {
    const d = parseDeployment(sample('deployment.json'));
    expect(d.runtimeType).toBe('docker');
    expect(d.edgeHub.image).toBe('mcr.microsoft.com/azureiotedge-hub:1.5');
    expect(d.edgeHub.env).toEqual({
      UpstreamProtocol: 'AmqpWs',
      https_proxy: 'http://proxy.corp.example.com:3128',
    });
    expect(d.edgeAgent.env.https_proxy).toBe('http://proxy.corp.example.com:3128');
  });

  it('reads the az CLI form ({ content: { modulesContent } }) the same', () => {
    const inner = JSON.parse(sample('deployment.json'));
    expect(parseDeployment(JSON.stringify({ id: 'd1', content: inner }))).toEqual(
      parseDeployment(sample('deployment.json')),
    );
  });

  it('refuses an env variable not written as { "value": ... }, and a manifest without $edgeAgent', () => {
    const m = JSON.parse(sample('deployment.json'));
    m.modulesContent.$edgeAgent['properties.desired'].systemModules.edgeHub.env.https_proxy = 'http://p:3128';
    expect(codeOf(() => parseDeployment(JSON.stringify(m)))).toBe('E_EDGE_DEPLOYMENT');
    expect(codeOf(() => parseDeployment('{"modulesContent":{}}'))).toBe('E_EDGE_DEPLOYMENT');
    expect(codeOf(() => parseDeployment('not json'))).toBe('E_EDGE_DEPLOYMENT');
  });
});

describe('what each runtime process sees', () => {
  it('edgeAgent starts with [agent.env] plus the identity variables the runtime injects', () => {
    const p = bootstrapAgentPlan(config('config.toml'), hub);
    expect(p.moduleId).toBe('$edgeAgent');
    expect(p.env).toEqual({
      UpstreamProtocol: 'AmqpWs',
      https_proxy: 'http://proxy.corp.example.com:3128',
      IOTEDGE_IOTHUBHOSTNAME: 'hub.iot.example.com',
      IOTEDGE_DEVICEID: 'edge-1',
      IOTEDGE_MODULEID: '$edgeAgent',
      IOTEDGE_AUTHSCHEME: 'sasToken',
      EdgeDeviceHostName: 'edge-1',
    });
    expect(p.protocols).toEqual(['AmqpWs']);
    expect(p.proxy).toBe('http://proxy.corp.example.com:3128');
  });

  it('edgeHub sees only the manifest env: no https_proxy there means none, whatever edgeAgent has', () => {
    const c = config('config.toml');
    const { hub: h } = deployedPlans(c, parseDeployment(sample('deployment.hub-without-proxy.json')), hub);
    expect(h.moduleId).toBe('$edgeHub');
    expect(h.env.https_proxy).toBeUndefined();
    expect(h.proxy).toBeUndefined();
    expect(h.env.IOTEDGE_MODULEID).toBe('$edgeHub');
    expect(bootstrapAgentPlan(c, hub).proxy).toBe('http://proxy.corp.example.com:3128');
  });

  it('edgeAgent is recreated with the manifest env only when it differs from [agent.env]', () => {
    const c = config('config.toml');
    expect(deployedPlans(c, parseDeployment(sample('deployment.json')), hub).agent).toBeUndefined();
    const m = JSON.parse(sample('deployment.json'));
    delete m.modulesContent.$edgeAgent['properties.desired'].systemModules.edgeAgent.env.https_proxy;
    const agent = deployedPlans(c, parseDeployment(JSON.stringify(m)), hub).agent;
    expect(agent?.stage).toBe('deployment');
    expect(agent?.proxy).toBeUndefined();
  });

  it('UpstreamProtocol: the named one only; unset, edgeAgent falls back from Amqp to AmqpWs and edgeHub does not', () => {
    expect(protocolsOf('$edgeHub', { UpstreamProtocol: 'MqttWs' }).protocols).toEqual(['MqttWs']);
    expect(protocolsOf('$edgeAgent', { UpstreamProtocol: 'amqpws' }).protocols).toEqual(['AmqpWs']);
    expect(protocolsOf('$edgeAgent', {}).protocols).toEqual(['Amqp', 'AmqpWs']);
    expect(protocolsOf('$edgeHub', {}).protocols).toEqual(['Amqp']);
    expect(protocolsOf('$edgeHub', { UpstreamProtocol: 'Https' }).error).toMatch(
      /Amqp, AmqpWs, Mqtt, MqttWs/,
    );
    const amqp = deployedPlans(
      config('config.amqp.toml'),
      parseDeployment(sample('deployment.amqp.json')),
      hub,
    );
    expect(amqp.hub.protocols).toEqual(['Amqp']);
    expect(bootstrapAgentPlan(config('config.mqttws.toml'), hub).protocols).toEqual(['MqttWs']);
  });

  it('modules read the trust bundle; the identity service reads the OS store and its own https_proxy', () => {
    const c = config('config.inspecting-proxy.toml');
    expect(bootstrapAgentPlan(c, hub).trustBundleFile).toBe('/lab/inspector-root.pem');
    expect(
      deployedPlans(c, parseDeployment(sample('deployment.inspecting-proxy.json')), hub).hub.trustBundleFile,
    ).toBe('/lab/inspector-root.pem');
    // [agent.env] is edgeAgent's, not the daemon's: without Environment= the daemon has no proxy.
    expect(identityPlan(c, {})).toMatchObject({ trust: 'os-store', dps: { idScope: '0ne00FAB001' } });
    expect(identityPlan(c, {}).proxy).toBeUndefined();
    expect(identityPlan(c, { HTTPS_PROXY: 'http://inspector.corp.example.com:8080' }).proxy).toBe(
      'http://inspector.corp.example.com:8080',
    );
    expect(identityPlan(config('config.toml'), {}).dps).toBeUndefined();
  });

  it('the proxy URL is kept as written: scheme and percent-encoded credentials', () => {
    expect(bootstrapAgentPlan(config('config.https-scheme.toml'), hub).proxy).toBe(
      'https://proxy.corp.example.com:3128',
    );
    expect(bootstrapAgentPlan(config('config.proxy-credentials.toml'), hub).proxy).toBe(
      'http://edge%40corp:p%40ss%3Aw%2Frd@proxy.corp.example.com:3128',
    );
    expect(redactProxy('http://edge%40corp:p%40ss%3Aw%2Frd@proxy.corp.example.com:3128')).toBe(
      'http://edge%40corp:***@proxy.corp.example.com:3128',
    );
  });
});

describe('edge-device program options', () => {
  const env = {
    EDGE_CONFIG: 'examples/edge/config.toml',
    EDGE_DEPLOYMENT: 'examples/edge/deployment.json',
    EDGE_FILES: '/etc/aziot/trust-bundle.pem=/lab/b.pem',
    EDGEAGENT_CONNECTION_STRING: 'HostName=h;DeviceId=d;ModuleId=$edgeAgent;SharedAccessKey=a2V5',
    https_proxy: 'http://proxy.corp.example.com:3128',
  };

  it('files and module keys from env; the process env is the daemons', () => {
    const o = optionsFrom([], env);
    expect(o.config.trustBundleFile).toBe('/lab/b.pem');
    expect(o.moduleKeys.$edgeAgent).toContain('SharedAccessKey=a2V5');
    expect(o.serviceEnv.https_proxy).toBe('http://proxy.corp.example.com:3128');
    expect(o.timeoutMs).toBe(10_000);
  });

  it('arguments win over env; a module that is not a system module is refused', () => {
    const o = optionsFrom(
      ['--config', 'examples/edge/config.mqttws.toml', '--module-cs', '$edgeHub=k2'],
      env,
    );
    expect(o.config.agent.env.UpstreamProtocol).toBe('MqttWs');
    expect(o.moduleKeys.$edgeHub).toBe('k2');
    expect(codeOf(() => optionsFrom(['--module-cs', 'tempSensor=k'], env))).toBe('E_EDGE_ARGS');
    expect(codeOf(() => optionsFrom([], {}))).toBe('E_EDGE_ARGS');
    expect(codeOf(() => optionsFrom(['--config', 'examples/edge/nope.toml'], env))).toBe('E_EDGE_ARGS');
  });
});
