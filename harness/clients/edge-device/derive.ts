/**
 * What each IoT Edge process sees, derived from config.toml, the deployment manifest and the host's service
 * environment, as the runtime hands them out (Microsoft Learn, "Configure an IoT Edge device to communicate
 * through a proxy server": https://learn.microsoft.com/azure/iot-edge/how-to-configure-proxy-support):
 *
 *   aziot-identityd   systemd Environment= (https_proxy)  DPS over HTTPS          OS trust store
 *   edgeAgent (boot)  config.toml [agent.env]             UpstreamProtocol        trust_bundle_cert
 *   edgeAgent         manifest systemModules.edgeAgent.env (replaces [agent.env] once deployed)
 *   edgeHub           manifest systemModules.edgeHub.env   UpstreamProtocol        trust_bundle_cert
 *
 * Modules see only their own container env: nothing of the host's (so edgeHub without https_proxy in the
 * manifest connects directly even when the daemons and edgeAgent have a proxy).
 */
import type { EdgeConfig } from './config.js';
import type { Deployment } from './manifest.js';

/** The `UpstreamProtocol` values edgeAgent and edgeHub take (Learn, module-edgeagent-edgehub). */
export const UPSTREAM_PROTOCOLS = ['Amqp', 'AmqpWs', 'Mqtt', 'MqttWs'] as const;
export type UpstreamProtocol = (typeof UPSTREAM_PROTOCOLS)[number];

export type ModuleId = '$edgeAgent' | '$edgeHub';

export interface ModulePlan {
  moduleId: ModuleId;
  /** Where its env comes from, for the report. */
  stage: 'config.toml [agent.env]' | 'deployment';
  /** The container's env: the file's variables plus those the runtime injects. */
  env: Record<string, string>;
  /**
   * The transports tried in order: the one `UpstreamProtocol` names; with none set, edgeAgent tries AMQP then
   * AMQP over WebSocket (Azure/iotedge edge-agent `ModuleClient.CreateDeviceClientForUpstreamProtocol`) and
   * edgeHub AMQP only (edge-hub `CloudConnectionProvider.GetTransportSettings`: no fallback).
   */
  protocols: UpstreamProtocol[];
  /** `https_proxy` (or `HTTPS_PROXY`) from its own env; only the WebSocket transports use it. */
  proxy?: string;
  /** The trust bundle file it installs at start (`trust_bundle_cert`), besides its image's own roots. */
  trustBundleFile?: string;
  /** A value it cannot use (an unknown UpstreamProtocol): the module fails to start, as the runtime's does. */
  configError?: string;
}

export interface IdentityPlan {
  /** Only with `source = "dps"`: aziot-identityd registers the device over HTTPS. */
  dps?: Extract<EdgeConfig['provisioning'], { source: 'dps' }>;
  /** The daemon's `https_proxy` (its systemd unit's Environment=). */
  proxy?: string;
  /** Always the host's OS store (OpenSSL's default roots), never trust_bundle_cert. */
  trust: 'os-store';
}

/** The proxy a process's env gives it: lower-case first, as curl and the runtimes read it. */
export function proxyOf(env: Readonly<Record<string, string | undefined>>): string | undefined {
  const v = env.https_proxy ?? env.HTTPS_PROXY;
  return v === undefined || v === '' ? undefined : v;
}

/** The transports a module tries, from its `UpstreamProtocol` (case as the runtime parses it: any). */
export function protocolsOf(
  moduleId: ModuleId,
  env: Readonly<Record<string, string>>,
): {
  protocols: UpstreamProtocol[];
  error?: string;
} {
  const raw = env.UpstreamProtocol ?? env.UPSTREAMPROTOCOL;
  if (raw === undefined || raw === '')
    return { protocols: moduleId === '$edgeAgent' ? ['Amqp', 'AmqpWs'] : ['Amqp'] };
  const found = UPSTREAM_PROTOCOLS.find((p) => p.toLowerCase() === raw.trim().toLowerCase());
  if (found) return { protocols: [found] };
  return {
    protocols: [],
    error: `UpstreamProtocol "${raw}" is not one of ${UPSTREAM_PROTOCOLS.join(', ')}`,
  };
}

function plan(
  moduleId: ModuleId,
  stage: ModulePlan['stage'],
  own: Record<string, string>,
  injected: Record<string, string>,
  cfg: EdgeConfig,
): ModulePlan {
  // The runtime's variables win over a file's of the same name (it writes them last).
  const env = { ...own, ...injected };
  const { protocols, error } = protocolsOf(moduleId, env);
  const proxy = proxyOf(env);
  return {
    moduleId,
    stage,
    env,
    protocols,
    ...(proxy ? { proxy } : {}),
    ...(cfg.trustBundleFile ? { trustBundleFile: cfg.trustBundleFile } : {}),
    ...(error ? { configError: error } : {}),
  };
}

/** The variables the runtime sets in a module's container (a subset: the ones about its identity). */
export function injectedEnv(
  moduleId: ModuleId,
  hub: { hostName: string; deviceId: string },
  cfg: EdgeConfig,
) {
  return {
    IOTEDGE_IOTHUBHOSTNAME: hub.hostName,
    IOTEDGE_DEVICEID: hub.deviceId,
    IOTEDGE_MODULEID: moduleId,
    IOTEDGE_AUTHSCHEME: 'sasToken',
    ...(cfg.hostname ? { EdgeDeviceHostName: cfg.hostname } : {}),
  };
}

/** The identity service's plan: DPS (if any) through the daemon's proxy, trusting the OS store. */
export function identityPlan(
  cfg: EdgeConfig,
  serviceEnv: Readonly<Record<string, string | undefined>>,
): IdentityPlan {
  const proxy = proxyOf(serviceEnv);
  return {
    ...(cfg.provisioning.source === 'dps' ? { dps: cfg.provisioning } : {}),
    ...(proxy ? { proxy } : {}),
    trust: 'os-store',
  };
}

/** edgeAgent's first start: aziot-edged creates it from config.toml's [agent] section. */
export function bootstrapAgentPlan(cfg: EdgeConfig, hub: { hostName: string; deviceId: string }): ModulePlan {
  return plan(
    '$edgeAgent',
    'config.toml [agent.env]',
    cfg.agent.env,
    injectedEnv('$edgeAgent', hub, cfg),
    cfg,
  );
}

/**
 * After edgeAgent has the deployment: edgeHub as the manifest declares it, and edgeAgent recreated with the
 * manifest's env (the Learn page: remove the proxy from edgeAgent's manifest env and the device is cut off
 * until config.toml is edited). `agent` is undefined when the manifest's env matches [agent.env].
 */
export function deployedPlans(
  cfg: EdgeConfig,
  deployment: Deployment,
  hub: { hostName: string; deviceId: string },
): { hub: ModulePlan; agent?: ModulePlan } {
  const hubPlan = plan(
    '$edgeHub',
    'deployment',
    deployment.edgeHub.env,
    injectedEnv('$edgeHub', hub, cfg),
    cfg,
  );
  const same =
    JSON.stringify(Object.entries(deployment.edgeAgent.env).sort()) ===
    JSON.stringify(Object.entries(cfg.agent.env).sort());
  if (same) return { hub: hubPlan };
  return {
    hub: hubPlan,
    agent: plan(
      '$edgeAgent',
      'deployment',
      deployment.edgeAgent.env,
      injectedEnv('$edgeAgent', hub, cfg),
      cfg,
    ),
  };
}
