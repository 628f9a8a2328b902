/**
 * Reads an IoT Edge deployment manifest (Microsoft Learn, "Properties of the IoT Edge agent and IoT Edge
 * hub module twins": https://learn.microsoft.com/azure/iot-edge/module-edgeagent-edgehub, and "Learn how
 * to deploy modules and establish routes": https://learn.microsoft.com/azure/iot-edge/module-composition):
 * `modulesContent.$edgeAgent["properties.desired"]` with `runtime.settings` and `systemModules.edgeAgent` /
 * `systemModules.edgeHub` (`settings.image`, `env: { NAME: { value } }`). The `az iot edge deployment`
 * form (`{ content: { modulesContent } }`) is read too.
 */
import { FieldlabError } from '../../../simulators/common/errors.js';

export interface SystemModule {
  image?: string;
  /** `env`, each `{ value }` as a string. */
  env: Record<string, string>;
  status?: string;
}

export interface Deployment {
  schemaVersion?: string;
  runtimeType?: string;
  edgeAgent: SystemModule;
  edgeHub: SystemModule;
  /** Custom modules by name (listed for the report; the persona connects only the system modules). */
  modules: string[];
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v);
const bad = (field: string, message: string, hint: string): FieldlabError =>
  new FieldlabError('E_EDGE_DEPLOYMENT', `deployment manifest: ${field}: ${message}`, { hint, where: field });

function systemModule(m: unknown, name: string): SystemModule {
  const where = `$edgeAgent.properties.desired.systemModules.${name}`;
  if (!isTable(m)) throw bad(where, 'missing', `declare ${name} under systemModules`);
  const env: Record<string, string> = {};
  if (m.env !== undefined && !isTable(m.env))
    throw bad(`${where}.env`, 'not an object', 'write "env": { "NAME": { "value": "..." } }');
  for (const [k, v] of Object.entries(isTable(m.env) ? m.env : {})) {
    // The module twin's schema: every variable is an object with `value` (Learn, module-edgeagent-edgehub).
    if (!isTable(v) || !('value' in v)) {
      throw bad(`${where}.env.${k}`, 'not { "value": ... }', `write "${k}": { "value": "..." }`);
    }
    env[k] = String(v.value);
  }
  const settings = isTable(m.settings) ? m.settings : {};
  return {
    ...(typeof settings.image === 'string' ? { image: settings.image } : {}),
    env,
    ...(typeof m.status === 'string' ? { status: m.status } : {}),
  };
}

/** Parses a deployment manifest's JSON text. */
export function parseDeployment(text: string): Deployment {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new FieldlabError(
      'E_EDGE_DEPLOYMENT',
      `deployment manifest is not JSON: ${(err as Error).message}`,
      {
        hint: 'export it from the portal or VS Code as deployment.json',
      },
    );
  }
  const root = isTable(doc) && isTable(doc.content) ? doc.content : doc;
  const content = isTable(root) ? root.modulesContent : undefined;
  if (!isTable(content))
    throw bad('modulesContent', 'missing', 'the manifest starts with { "modulesContent": { ... } }');
  const agent = content.$edgeAgent;
  const desired = isTable(agent) ? agent['properties.desired'] : undefined;
  if (!isTable(desired)) {
    throw bad(
      '$edgeAgent',
      'no "properties.desired"',
      'give $edgeAgent its "properties.desired" (runtime, systemModules)',
    );
  }
  const system = isTable(desired.systemModules) ? desired.systemModules : {};
  const runtime = isTable(desired.runtime) ? desired.runtime : {};
  return {
    ...(typeof desired.schemaVersion === 'string' ? { schemaVersion: desired.schemaVersion } : {}),
    ...(typeof runtime.type === 'string' ? { runtimeType: runtime.type } : {}),
    edgeAgent: systemModule(system.edgeAgent, 'edgeAgent'),
    edgeHub: systemModule(system.edgeHub, 'edgeHub'),
    modules: Object.keys(isTable(desired.modules) ? desired.modules : {}),
  };
}
