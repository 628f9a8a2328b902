/**
 * The IoT Edge device persona's run, in the runtime's order:
 *
 *   config.toml ─▶ aziot-identityd ──(DPS over HTTPS, daemon https_proxy, OS store)──▶ assigned hub
 *                  aziot-edged ─▶ edgeAgent ([agent.env]) ──▶ hub as $edgeAgent ──▶ deployment
 *   deployment  ─▶ edgeHub (manifest env) ──▶ hub as $edgeHub
 *                  edgeAgent recreated with the manifest's env (when it differs) ──▶ hub as $edgeAgent
 *
 * A step that fails stops what depends on it (no deployment without edgeAgent, no modules without a hub).
 */
import { readFileSync } from 'node:fs';
import { type EdgeConfig, parseConnectionString } from './config.js';
import { connectModule, defaultRoots, type ModuleOutcome, type Outcome, registerWithDps } from './connect.js';
import { bootstrapAgentPlan, deployedPlans, identityPlan, type ModuleId, type ModulePlan } from './derive.js';
import type { Deployment } from './manifest.js';

export interface EdgeRunOptions {
  config: EdgeConfig;
  deployment: Deployment;
  /** The host services' environment (their systemd units' Environment=): the daemons' https_proxy. */
  serviceEnv: Readonly<Record<string, string | undefined>>;
  /** Each module identity's connection string or key (the runtime gets them from the identity service). */
  moduleKeys: Partial<Record<ModuleId, string>>;
  /** The host's OS trust store (PEMs). Default: Node's roots. */
  osStore?: string[];
  /** The roots the module images ship with (PEMs). Default: Node's roots. */
  imageRoots?: string[];
  timeoutMs: number;
}

export interface StepReport {
  /** `aziot-identityd`, `edgeAgent`, `edgeHub`. */
  process: string;
  /** What it did: `DPS registration`, `$edgeAgent (config.toml [agent.env])`... */
  what: string;
  plan?: ModulePlan;
  outcome: ModuleOutcome | Outcome | { ok: false; skipped: string };
}

/** A module identity's key, from a connection string or a bare key. */
function keyOf(v: string | undefined): string | undefined {
  if (!v) return undefined;
  return v.includes('SharedAccessKey=') ? parseConnectionString(v).SharedAccessKey : v;
}

function readPems(file: string): string[] {
  return [readFileSync(file, 'utf8')];
}

/** Runs the device and says what each process came to (never throws for network or SDK errors). */
export async function runEdgeDevice(o: EdgeRunOptions): Promise<StepReport[]> {
  const steps: StepReport[] = [];
  const cfg = o.config;
  const osStore = o.osStore ?? defaultRoots();
  const imageRoots = o.imageRoots ?? defaultRoots();

  let hub: { hostName: string; deviceId: string };
  const identity = identityPlan(cfg, o.serviceEnv);
  if (cfg.provisioning.source === 'dps') {
    const reg = await registerWithDps(identity, osStore, o.timeoutMs);
    steps.push({ process: 'aziot-identityd', what: 'DPS registration (HTTPS)', outcome: reg });
    if (!reg.ok) return steps;
    hub = { hostName: reg.hubHostName, deviceId: reg.deviceId };
  } else {
    hub = { hostName: cfg.provisioning.hubHostName, deviceId: cfg.provisioning.deviceId };
  }

  // A module reads its image's roots and, installed at start, the trust bundle (trust_bundle_cert).
  const trustOf = (p: ModulePlan): string[] => [
    ...imageRoots,
    ...(p.trustBundleFile ? readPems(p.trustBundleFile) : []),
  ];
  const connect = async (p: ModulePlan, process: string): Promise<ModuleOutcome> => {
    const key = keyOf(o.moduleKeys[p.moduleId]);
    const outcome: ModuleOutcome = key
      ? await connectModule(p, hub, key, trustOf(p), o.timeoutMs)
      : {
          ok: false,
          errorClass: 'ConfigError',
          message: `no key for module identity ${p.moduleId} (the runtime gets it from the identity service)`,
        };
    steps.push({ process, what: `${p.moduleId} (${p.stage})`, plan: p, outcome });
    return outcome;
  };

  const boot = bootstrapAgentPlan(cfg, hub);
  const agent = await connect(boot, 'edgeAgent');
  const deployed = deployedPlans(cfg, o.deployment, hub);
  if (!agent.ok) {
    steps.push({
      process: 'edgeHub',
      what: '$edgeHub (deployment)',
      plan: deployed.hub,
      outcome: { ok: false, skipped: 'not started: edgeAgent never reached the hub to get the deployment' },
    });
    return steps;
  }
  await connect(deployed.hub, 'edgeHub');
  if (deployed.agent) await connect(deployed.agent, 'edgeAgent');
  return steps;
}
