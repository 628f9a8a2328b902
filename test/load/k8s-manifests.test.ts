import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

// load/kustomization.yaml + load/k8s/*.yaml: nothing is applied here, only well-formedness and the
// cross-references that would break a cluster run (files, ConfigMap keys, import paths, ports).
const LOAD = join(import.meta.dirname, '..', '..', 'load');

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML, walked only inside assertions
type Doc = Record<string, any>;

function docs(file: string): Doc[] {
  const all = parseAllDocuments(readFileSync(file, 'utf8'));
  for (const d of all) expect(d.errors, `${file}: ${d.errors.join('; ')}`).toEqual([]);
  return all.map((d) => d.toJS() as Doc);
}

const kustomization = docs(join(LOAD, 'kustomization.yaml'))[0] as Doc;
const manifests = readdirSync(join(LOAD, 'k8s'))
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => docs(join(LOAD, 'k8s', f)));
const byKind = (kind: string) => manifests.filter((d) => d.kind === kind);

describe('load/ Kubernetes manifests', () => {
  it('the kustomization lists every manifest and existing script files', () => {
    expect(kustomization.kind).toBe('Kustomization');
    expect([...kustomization.resources].sort()).toEqual(
      readdirSync(join(LOAD, 'k8s'))
        .filter((f) => f.endsWith('.yaml'))
        .map((f) => `k8s/${f}`)
        .sort(),
    );
    const gen = kustomization.configMapGenerator[0];
    expect(gen.name).toBe('fieldlab-load-scripts');
    for (const f of gen.files as string[]) expect(existsSync(join(LOAD, f)), f).toBe(true);
    // Every module the scripts import is in the ConfigMap.
    for (const script of ['tunnel-throughput.js', 'tunnel-open-rate.js', 'lib/tunnel-api.js']) {
      const src = readFileSync(join(LOAD, script), 'utf8');
      for (const m of src.matchAll(/from '\.\/(?:lib\/)?([\w-]+\.js)'/g)) {
        expect(
          gen.files.map((f: string) => basename(f)),
          `${script} imports ${m[1]}`,
        ).toContain(m[1]);
      }
    }
    expect(kustomization.generatorOptions.disableNameSuffixHash).toBe(true);
  });

  it('runs the tunnel service from the fieldlab image, behind a Service on 8080/8443', () => {
    const [dep] = byKind('Deployment');
    const c = dep?.spec.template.spec.containers[0];
    expect(c.image).toBe('fieldlab:latest');
    expect(c.command.slice(0, 3)).toEqual(['fieldlab', 'serve', 'tunnel-service']);
    expect(c.command).toEqual(
      expect.arrayContaining(['--host', '0.0.0.0', '--api-port', '8080', '--data-port', '8443']),
    );
    expect(dep?.spec.template.metadata.labels).toMatchObject(dep?.spec.selector.matchLabels);
    const [svc] = byKind('Service');
    expect(svc?.metadata.name).toBe('fieldlab-tunnel-service');
    expect(svc?.spec.selector).toEqual(dep?.spec.selector.matchLabels);
    expect(svc?.spec.ports.map((p: Doc) => p.port).sort()).toEqual([8080, 8443]);
  });

  it('a k6-operator TestRun runs the throughput script from the ConfigMap against that Service', () => {
    const [tr] = byKind('TestRun');
    expect(tr?.apiVersion).toBe('k6.io/v1alpha1');
    expect(tr?.spec.parallelism).toBeGreaterThanOrEqual(1);
    const mount = tr?.spec.runner.volumeMounts[0];
    expect(tr?.spec.script.localFile).toBe(`${mount.mountPath}/tunnel-throughput.js`);
    const gen = kustomization.configMapGenerator[0];
    for (const pod of [tr?.spec.runner, tr?.spec.initializer]) {
      const vol = pod.volumes.find((v: Doc) => v.name === mount.name);
      expect(vol.configMap.name).toBe(gen.name);
      // The volume lays the ConfigMap keys out at the paths the scripts import from.
      expect(vol.configMap.items.map((i: Doc) => i.path).sort()).toEqual([...gen.files].sort());
      const env = Object.fromEntries(pod.env.map((e: Doc) => [e.name, e.value]));
      expect(env.API_URL).toBe('http://fieldlab-tunnel-service:8080');
      expect(env.DATA_URL).toBe('ws://fieldlab-tunnel-service:8443');
      expect(Number(env.VUS)).toBeGreaterThanOrEqual(tr?.spec.parallelism);
    }
    const [ns] = byKind('Namespace');
    expect(ns?.metadata.name).toBe(kustomization.namespace);
  });
});
