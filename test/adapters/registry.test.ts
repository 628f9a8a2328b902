import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AdapterContext,
  adapterFor,
  adapterTypes,
  defineAdapter,
  type LabSimulatorHandle,
  listAdapters,
  registerAdapter,
} from '../../harness/adapters/index.js';
import { servableTypes, serveCommand } from '../../harness/cli/serve.js';
import { findScenarioFiles, loadScenario } from '../../harness/scenario/load.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';

/** Simulator types the registry must hold (at least): one file each under harness/adapters/. */
const TYPES = [
  'aws-iot',
  'connect-proxy',
  'dps',
  'geo-dns',
  'https-server',
  'iot-hub',
  'krypton',
  'mqtt-broker',
  'resolver',
  'sshd',
  'tls-inspector',
  'tunnel-service',
];

describe('the simulator registry', () => {
  it('holds every simulator type, each with a summary, and `fieldlab serve` runs every one of them', () => {
    expect(adapterTypes()).toEqual(expect.arrayContaining(TYPES));
    for (const a of listAdapters()) expect(a.summary.length, a.type).toBeGreaterThan(20);
    // cli/serve.ts had a second registry of 8 types: sshd, resolver, krypton and aws-iot could not be served.
    expect(servableTypes()).toEqual(adapterTypes());
  });

  it('serve refuses an unknown type and a type that cannot run alone, naming what can', async () => {
    await expect(serveCommand('nope', {})).rejects.toMatchObject({
      code: 'E_UNKNOWN_SIMULATOR',
      hint: expect.stringContaining('resolver'),
    });
    registerAdapter(
      defineAdapter({
        type: 'lab-only',
        summary: 'a simulator that needs the rest of its lab',
        options: (await import('zod')).z.object({}).strict(),
        start: () => Promise.reject(new Error('not started in this test')),
      }),
    );
    await expect(serveCommand('lab-only', {})).rejects.toMatchObject({
      code: 'E_NOT_SERVABLE',
      message: expect.stringContaining('lab-only cannot run alone'),
    });
  });

  it("parsing a scenario's options again gives the same options (the lab parses, then the adapter)", async () => {
    let checked = 0;
    for (const file of await findScenarioFiles(['scenarios'])) {
      const { scenario } = await loadScenario(file);
      for (const sim of scenario.lab.simulators) {
        const schema = adapterFor(sim.type)?.options;
        const once = schema?.safeParse(sim.options ?? {});
        if (!schema || !once?.success) continue;
        expect(schema.parse(once.data), `${file}: ${sim.name}`).toEqual(once.data);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
  });
});

describe('peers by their own handle type', () => {
  let pki: PkiHandle;
  const running = new Map<string, { type: string; handle: LabSimulatorHandle }>();

  beforeAll(async () => {
    pki = await startPki({ name: 'pki' });
  });
  afterAll(async () => {
    for (const r of running.values()) await r.handle.stop();
    await pki?.stop();
  });

  async function start(type: string, name: string, options: unknown) {
    const adapter = adapterFor(type);
    if (!adapter) throw new Error(`no adapter ${type}`);
    const started = await adapter.start(context(name, pki, running), options);
    running.set(name, { type, handle: started.handle });
    return started;
  }

  it("a type's adapter validates its own options (the lab may hand them over as written)", async () => {
    await expect(start('https-server', 'bad', { cert: 'rotten' })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('bad (https-server): options.cert'),
    });
  });

  it('a dps reaches the iot-hub it names through the hub adapter, and refuses a simulator of another type', async () => {
    await start('iot-hub', 'hub', { devices: [{ deviceId: 'd1' }] });
    await start('https-server', 'api', {});
    const dps = await start('dps', 'dps', { hub: 'hub', enrollments: [{ registrationId: 'dev-1' }] });
    expect(dps.vars?.idScope).toBe('0ne00FAB001');
    expect(dps.vars?.['key-dev-1']).toMatch(/^[A-Za-z0-9+/]+=*$/);
    // The hub adapter knows the handle it started; the https-server's is not a hub.
    expect(adapterFor('iot-hub')?.handleOf(running.get('hub')!.handle)).toBe(running.get('hub')!.handle);
    expect(adapterFor('iot-hub')?.handleOf(running.get('api')!.handle)).toBeUndefined();
    await expect(start('dps', 'dps2', { hub: 'api' })).rejects.toMatchObject({
      code: 'E_BAD_OPTIONS',
      message: 'dps2 (dps): options.hub: no iot-hub named api',
    });
  });
});

/** What a lab hands an adapter, on loopback, with the simulators started so far as its peers. */
function context(
  name: string,
  pki: PkiHandle,
  peers: ReadonlyMap<string, { type: string; handle: LabSimulatorHandle }>,
): AdapterContext {
  const labLookup: LookupFunction = (host, options, callback) => dnsLookup(host, options, callback);
  return {
    name,
    hostName: `${name}.lab.example`,
    address: '127.0.0.1',
    pki,
    labDir: pki.dir,
    lookup: labLookup,
    trackProcess: () => {},
    publicPort: 0,
    peer: (n) => peers.get(n),
  };
}
