import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyNetns, type NetnsLab } from '../../harness/topology/netns/apply.js';
import { explainPath } from '../../harness/topology/netns/explain.js';
import type { TopologyInput } from '../../harness/topology/netns/model.js';
import {
  type KryptonEvents,
  type KryptonHandle,
  REGISTER_PATH,
  start as startKrypton,
} from '../../simulators/krypton/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';
import { namespacesOf, rootLinks, strayLinks, wireguardGoPids } from './helpers.js';

/**
 * Seed 002 end to end on real namespaces: a device with a SORACOM Arc WireGuard interface whose
 * AllowedIPs (100.127.0.0/16) miss Krypton (203.0.113.67), so curl leaves by the internet route and
 * times out (the internet path to Krypton is firewalled); adding 203.0.113.67/32 fixes it.
 *
 *   device ─lan─ inet (router, DROPs :8036) ─wan─ krypton 203.0.113.67
 *      └──── wg-arc ════ (WireGuard over the same path) ════ arc 203.0.113.2 ─wan─┘
 */
const labId = `arc${process.pid}`.slice(0, 10);
const WG = 'wg-arc';

function topology(): TopologyInput {
  return {
    labId,
    segments: [
      { name: 'lan', cidr: '198.51.100.0/24' },
      { name: 'wan', cidr: '203.0.113.0/24' },
    ],
    dns: { nameservers: [], hosts: { 'krypton.soracom.io': '203.0.113.67' } },
    hosts: [
      {
        name: 'device',
        segments: [{ segment: 'lan', address: '198.51.100.10' }],
        routes: [{ to: 'default', via: '198.51.100.1' }],
        // The SIM's address on the SORACOM network; Arc's default config: AllowedIPs = 100.127.0.0/16.
        wireguard: {
          ifname: WG,
          address: '100.64.10.2/32',
          peers: [{ host: 'arc', allowedIps: ['100.127.0.0/16'] }],
        },
      },
      {
        name: 'inet',
        forward: true,
        segments: [
          { segment: 'lan', address: '198.51.100.1' },
          { segment: 'wan', address: '203.0.113.1' },
        ],
        // Krypton is not reachable from the internet: its port is firewalled (a silent DROP).
        firewall: [{ action: 'drop', chain: 'forward', proto: 'tcp', to: '203.0.113.67', port: 8036 }],
      },
      {
        name: 'arc',
        forward: true,
        segments: [{ segment: 'wan', address: '203.0.113.2' }],
        routes: [{ to: '198.51.100.0/24', via: '203.0.113.1' }],
        wireguard: {
          address: '100.127.0.1/32',
          peers: [{ host: 'device', allowedIps: ['100.64.10.2/32'], endpoint: false }],
        },
      },
      {
        name: 'krypton',
        segments: [{ segment: 'wan', address: '203.0.113.67' }],
        routes: [
          { to: '100.64.0.0/10', via: '203.0.113.2' },
          { to: '198.51.100.0/24', via: '203.0.113.1' },
        ],
      },
    ],
  };
}

describe.skipIf(missing('netns', 'cmd:wireguard-go', 'cmd:wg', 'cmd:curl'))(
  'seed 002: Arc AllowedIPs and Krypton',
  () => {
    describe.sequential('broken, then fixed', () => {
      let state: string;
      let pki: PkiHandle;
      let lab: NetnsLab;
      let krypton: KryptonHandle;
      let linksBefore: string[];
      let wgBefore: number[];

      beforeAll(async () => {
        state = mkdtempSync(join(tmpdir(), 'fl-netns-arc-'));
        process.env.FIELDLAB_STATE_DIR = state;
        linksBefore = rootLinks();
        wgBefore = wireguardGoPids();
        pki = await startPki();
        const leaf = await pki.issueServer(['krypton.soracom.io']);
        lab = await applyNetns(topology());
        // Krypton runs in this process, on a socket bound inside the krypton namespace.
        const bound = await lab.bindIn('krypton', '203.0.113.67', 8036);
        krypton = await startKrypton({
          certPem: leaf.chainPem,
          keyPem: leaf.keyPem,
          listenHandle: bound.handle,
          // This test is about the path to Krypton; the DPS registration is test/krypton's.
          provision: (source) => ({
            registrationId: `krypton-${source.replaceAll('.', '-')}`,
            deviceId: `krypton-${source.replaceAll('.', '-')}`,
            host: 'hub.iot.example.com',
            certificate: leaf.chainPem,
            privateKey: leaf.keyPem,
          }),
        });
      }, 30_000);

      afterAll(async () => {
        await krypton?.stop();
        await lab?.teardown();
        await pki?.stop();
        expect(namespacesOf(labId)).toEqual([]);
        expect(strayLinks(linksBefore)).toEqual([]);
        expect(wireguardGoPids().filter((p) => !wgBefore.includes(p))).toEqual([]);
        delete process.env.FIELDLAB_STATE_DIR;
        rmSync(state, { recursive: true, force: true });
      });

      const curl = () =>
        lab.execIn(
          'device',
          [
            'curl',
            '-sS',
            '--connect-timeout',
            '2',
            '--max-time',
            '4',
            '-X',
            'POST',
            '-H',
            'Content-Type: application/json',
            '--cacert',
            pki.trust.bundlePath,
            `https://krypton.soracom.io:8036${REGISTER_PATH}`,
          ],
          { timeoutMs: 10_000 },
        );

      it('broken: AllowedIPs = 100.127.0.0/16, curl to Krypton times out (it left via eth0)', async () => {
        expect(krypton.endpoints[0]).toMatchObject({ host: '203.0.113.67', port: 8036 });
        const registers: Array<KryptonEvents['register']> = [];
        krypton.events.on('register', (e: KryptonEvents['register']) => registers.push(e));
        const r = await curl();
        // curl 28: operation timed out (the seed's "Failed to connect ... Timed out")
        expect(r.exitCode).toBe(28);
        expect(r.durationMs).toBeGreaterThanOrEqual(1_900);
        expect(registers).toEqual([]);
        const drops = (await lab.firewallCounters('inet')).find((c) => c.index === 0);
        expect(drops?.packets).toBeGreaterThanOrEqual(1);
        const why = await explainPath(lab.ns('device'), '203.0.113.67', { port: 8036, wgIfname: WG });
        expect(why.sentence).toBe(
          'SYN to 203.0.113.67:8036 left via eth0, not wg-arc: AllowedIPs lacks it (has 100.127.0.0/16); ' +
            'fix: add 203.0.113.67/32 to AllowedIPs',
        );
      });

      it('fixed: AllowedIPs += 203.0.113.67/32, curl gets an operation for the SIM address', async () => {
        await lab.setAllowedIps('device', 'arc', ['100.127.0.0/16', '203.0.113.67/32']);
        const why = await explainPath(lab.ns('device'), '203.0.113.67', { port: 8036, wgIfname: WG });
        expect(why.viaTunnel).toBe(true);
        const registered = new Promise<KryptonEvents['register']>((resolve) =>
          krypton.events.once('register', resolve),
        );
        const r = await curl();
        expect(r.exitCode, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ operationId: expect.any(String), status: 'assigning' });
        expect(await registered).toMatchObject({
          source: '100.64.10.2',
          allowed: true,
          status: 200,
          deviceId: 'krypton-100-64-10-2',
        });
      });

      it('second guard: past no firewall, a request from the internet gets 403 naming its source', async () => {
        await lab.setFirewall('inet', []);
        await lab.setAllowedIps('device', 'arc', ['100.127.0.0/16']);
        const denied = new Promise<KryptonEvents['source-denied']>((resolve) =>
          krypton.events.once('source-denied', resolve),
        );
        expect((await explainPath(lab.ns('device'), '203.0.113.67', { wgIfname: WG })).facts.dev).toBe(
          'eth0',
        );
        const r = await lab.execIn(
          'device',
          [
            'curl',
            '-sS',
            '-w',
            '\n%{http_code}',
            '--max-time',
            '4',
            '-X',
            'POST',
            '--cacert',
            pki.trust.bundlePath,
            `https://krypton.soracom.io:8036${REGISTER_PATH}`,
          ],
          { timeoutMs: 10_000 },
        );
        const cut = r.stdout.lastIndexOf('\n');
        const [body, code] = [r.stdout.slice(0, cut), r.stdout.slice(cut + 1)];
        expect(code).toBe('403');
        expect(JSON.parse(body ?? '{}')).toEqual({
          code: 'FORBIDDEN',
          message: expect.stringMatching(/from 198\.51\.100\.10 .*\(100\.64\.0\.0\/10\)/),
        });
        expect(await denied).toMatchObject({ source: '198.51.100.10', allowedSources: ['100.64.0.0/10'] });
      });
    });
  },
);
