/**
 * Reads an IoT Edge 1.4/1.5 `/etc/aziot/config.toml` (Microsoft Learn, "Configure IoT Edge device
 * settings": https://learn.microsoft.com/azure/iot-edge/configure-device) into what the persona needs:
 * how the device is provisioned, the trust bundle, and the `[agent]` section aziot-edged starts edgeAgent
 * with. Keys the persona does not use (`[connect]`, `[listen]`, `[moby_runtime]`, `[edge_ca]`...) are
 * accepted and ignored, as a user's whole file must load.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse, TomlError } from 'smol-toml';
import { FieldlabError } from '../../../simulators/common/errors.js';

/** How the identity service (aziot-identityd) provisions the device. */
export type Provisioning =
  | { source: 'manual'; hubHostName: string; deviceId: string; key?: string }
  | {
      source: 'dps';
      /** `global_endpoint`'s host (the runtime registers over HTTPS on 443). */
      globalEndpoint: string;
      idScope: string;
      attestation:
        | { method: 'symmetric_key'; registrationId: string; key: string }
        | { method: 'x509'; registrationId?: string; certFile: string; keyFile: string };
    };

export interface EdgeConfig {
  /** `hostname`: the device's name for downstream devices and modules (EdgeDeviceHostName). */
  hostname?: string;
  provisioning: Provisioning;
  /** `trust_bundle_cert`, as a local path (after the file map). */
  trustBundleFile?: string;
  agent: {
    name: string;
    type: string;
    image?: string;
    /** `[agent.env]`: what aziot-edged gives the edgeAgent container, values as strings. */
    env: Record<string, string>;
  };
}

/**
 * Where the device's `file://` paths are here: `/etc/aziot/trust-bundle.pem` on the device may be a lab
 * file. Paths not in the map are read as they are.
 */
export type FileMap = ReadonlyMap<string, string>;

const bad = (field: string, message: string, hint: string): FieldlabError =>
  new FieldlabError('E_EDGE_CONFIG', `config.toml: ${field}: ${message}`, { hint, where: field });

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === 'object' && v !== null && !Array.isArray(v);

function str(t: Table, key: string, where: string, hint: string): string {
  const v = t[key];
  if (typeof v !== 'string' || v === '') throw bad(`${where}${key}`, 'missing or not a string', hint);
  return v;
}

/** A `file:///abs/path` URI (the form config.toml uses for files) as a local path, through the map. */
export function fileUri(uri: string, field: string, files: FileMap): string {
  if (!uri.startsWith('file://')) {
    throw bad(
      field,
      `"${uri}" is not a file:// URI`,
      'write it as file:///absolute/path (config.toml takes URIs)',
    );
  }
  const path = fileURLToPath(uri);
  return files.get(path) ?? path;
}

/** A secret given inline (`{ value = "..." }`) or by file (`{ uri = "file:///..." }`), as in config.toml. */
function secret(v: unknown, field: string, files: FileMap): string {
  if (typeof v === 'string') return v;
  if (isTable(v) && typeof v.value === 'string') return v.value;
  if (isTable(v) && typeof v.uri === 'string') {
    const path = fileUri(v.uri, `${field}.uri`, files);
    return readFileSync(path, 'utf8').trim();
  }
  throw bad(field, 'expected { value = "..." } or { uri = "file:///..." }', 'see the config.toml template');
}

/** `HostName=...;DeviceId=...;SharedAccessKey=...` as a map (keys as Azure writes them). */
export function parseConnectionString(cs: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of cs.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

function provisioning(p: unknown, files: FileMap): Provisioning {
  if (!isTable(p))
    throw bad('provisioning', 'missing section', 'add [provisioning] with source = "manual" or "dps"');
  const source = p.source;
  if (source === 'manual') {
    if (typeof p.connection_string === 'string') {
      const cs = parseConnectionString(p.connection_string);
      if (!cs.HostName || !cs.DeviceId) {
        throw bad(
          'provisioning.connection_string',
          'needs HostName and DeviceId',
          'copy the device connection string from the hub',
        );
      }
      return {
        source,
        hubHostName: cs.HostName,
        deviceId: cs.DeviceId,
        ...(cs.SharedAccessKey ? { key: cs.SharedAccessKey } : {}),
      };
    }
    const hint = 'give connection_string, or iothub_hostname and device_id';
    const auth = isTable(p.authentication) ? p.authentication : {};
    return {
      source,
      hubHostName: str(p, 'iothub_hostname', 'provisioning.', hint),
      deviceId: str(p, 'device_id', 'provisioning.', hint),
      ...(auth.device_id_pk !== undefined
        ? { key: secret(auth.device_id_pk, 'provisioning.authentication.device_id_pk', files) }
        : {}),
    };
  }
  if (source === 'dps') {
    const endpoint = str(p, 'global_endpoint', 'provisioning.', 'the DPS global endpoint, https://<host>/');
    let host: string;
    try {
      host = new URL(endpoint).hostname;
    } catch {
      throw bad('provisioning.global_endpoint', `"${endpoint}" is not a URL`, 'write it as https://<host>/');
    }
    const idScope = str(p, 'id_scope', 'provisioning.', 'the ID scope from the DPS overview page');
    const a = p.attestation;
    if (!isTable(a)) {
      throw bad('provisioning.attestation', 'missing', 'add [provisioning.attestation] with method');
    }
    if (a.method === 'symmetric_key') {
      return {
        source,
        globalEndpoint: host,
        idScope,
        attestation: {
          method: 'symmetric_key',
          registrationId: str(
            a,
            'registration_id',
            'provisioning.attestation.',
            'the enrollment registration id',
          ),
          key: secret(a.symmetric_key, 'provisioning.attestation.symmetric_key', files),
        },
      };
    }
    if (a.method === 'x509') {
      const hint = 'give identity_cert and identity_pk as file:// URIs';
      return {
        source,
        globalEndpoint: host,
        idScope,
        attestation: {
          method: 'x509',
          ...(typeof a.registration_id === 'string' ? { registrationId: a.registration_id } : {}),
          certFile: fileUri(
            str(a, 'identity_cert', 'provisioning.attestation.', hint),
            'identity_cert',
            files,
          ),
          keyFile: fileUri(str(a, 'identity_pk', 'provisioning.attestation.', hint), 'identity_pk', files),
        },
      };
    }
    throw bad(
      'provisioning.attestation.method',
      `"${String(a.method)}" is not modelled`,
      'use "symmetric_key" or "x509" (TPM attestation is not modelled)',
    );
  }
  throw bad('provisioning.source', `"${String(source)}" is not modelled`, 'use "manual" or "dps"');
}

/** Parses config.toml text; `files` maps the device's paths to local ones. */
export function parseEdgeConfig(text: string, files: FileMap = new Map()): EdgeConfig {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (err) {
    const where = err instanceof TomlError ? ` (line ${err.line}, column ${err.column})` : '';
    throw new FieldlabError(
      'E_EDGE_CONFIG',
      `config.toml is not valid TOML${where}: ${(err as Error).message}`,
      {
        hint: 'check quoting: values are "strings", tables are [section]',
      },
    );
  }
  const agent = isTable(doc.agent) ? doc.agent : undefined;
  if (!agent) {
    throw bad(
      'agent',
      'missing section',
      'add [agent] with name = "edgeAgent", type = "docker" and [agent.config]',
    );
  }
  const env: Record<string, string> = {};
  if (agent.env !== undefined && !isTable(agent.env))
    throw bad('agent.env', 'not a table', 'write [agent.env]');
  for (const [k, v] of Object.entries(isTable(agent.env) ? agent.env : {})) {
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
      throw bad(`agent.env.${k}`, 'not a string', 'write "name" = "value"');
    }
    env[k] = String(v);
  }
  const config = isTable(agent.config) ? agent.config : {};
  return {
    ...(typeof doc.hostname === 'string' ? { hostname: doc.hostname } : {}),
    provisioning: provisioning(doc.provisioning, files),
    ...(typeof doc.trust_bundle_cert === 'string'
      ? { trustBundleFile: fileUri(doc.trust_bundle_cert, 'trust_bundle_cert', files) }
      : {}),
    agent: {
      name: typeof agent.name === 'string' ? agent.name : 'edgeAgent',
      type: typeof agent.type === 'string' ? agent.type : 'docker',
      ...(typeof config.image === 'string' ? { image: config.image } : {}),
      env,
    },
  };
}
