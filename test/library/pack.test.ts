import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The published package, as a user gets it: `npm pack`, then a project outside this repo installs the
 * tarball (its dependencies come from npm's cache: `npm ci` warmed it), imports `fieldlab` and
 * `fieldlab/vitest`, type-checks against the shipped declarations and runs its own vitest. A file missing
 * from package.json `files`/`exports` fails here.
 */

const repo = process.cwd();
const versionOf = (pkg: string) =>
  (JSON.parse(readFileSync(join(repo, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string })
    .version;

const SCENARIO = `name: tiny
title: A device fetches from its cloud endpoint
lab:
  simulators:
    - { name: api, type: https-server, host: api.iot.example.com }
client: { type: probe, url: '\${api.url}', timeout: 5s }
variants:
  - name: broken-untrusted
    client: { trust: system }
    expect: { result: fail, class: tls.untrusted-root }
  - name: fixed
    expect: pass
`;

const TEST = `import { get } from 'node:https';
import { runScenario, startLab } from 'fieldlab';
import { useLab } from 'fieldlab/vitest';
import { expect, it } from 'vitest';

it('useLab gives the lab, and the lab saw the device', async () => {
  const lab = await useLab('scenarios/tiny.yaml', { variant: 'fixed' });
  const status = await new Promise<number>((resolve, reject) => {
    get(lab.ref('api.url'), { ca: lab.ca.pem, lookup: lab.lab.lookup }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).once('error', reject);
  });
  expect(status).toBe(200);
  await lab.waitFor({ source: 'api', type: 'request' });
  expect(lab).toHaveSeen({ source: 'api', type: 'request', match: { status: 200 } });
});

it('runScenario and toFailWith', async () => {
  const run = await runScenario('scenarios/tiny.yaml', { only: ['broken-untrusted'] });
  expect(run).toFailWith('tls.untrusted-root');
  expect(run.totals.passed).toBe(1);
  // Type-checked, never run: the matcher declarations reach a user's project.
  const typed = () => {
    // @ts-expect-error: not a failure class
    expect(run).toFailWith('tcp.nope');
  };
  expect(typed).toBeTypeOf('function');
});

it('startLab', async () => {
  const lab = await startLab({
    name: 'consumer',
    simulators: [{ name: 'api', type: 'https-server', host: 'api.iot.example.com' }],
  });
  try {
    expect(lab.sim('api').endpoints[0]?.url).toMatch(/^https:\\/\\/api\\.iot\\.example\\.com:\\d+\\/$/);
  } finally {
    await lab.stop();
  }
});
`;

let dir: string;
beforeAll(() => {
  if (!existsSync(join(repo, 'dist', 'harness', 'vitest.js')))
    throw new Error('dist/ is missing or old: run `npm run build` first (`npm test` does)');
  dir = mkdtempSync(join(tmpdir(), 'fl-pack-'));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the npm package', () => {
  it('installs from its tarball into another project, whose vitest suite using it passes', async () => {
    const packed = await execa('npm', ['pack', '--json', '--pack-destination', dir], {
      cwd: repo,
      timeout: 60_000,
    });
    const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = info!.files.map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['dist/harness/vitest.js', 'dist/harness/vitest.d.ts']));

    const project = join(dir, 'project');
    mkdirSync(join(project, 'scenarios'), { recursive: true });
    mkdirSync(join(project, 'test'));
    mkdirSync(join(project, 'state'));
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({
        name: 'fieldlab-consumer',
        private: true,
        type: 'module',
        dependencies: {
          fieldlab: `file:../${info!.filename}`,
          vitest: versionOf('vitest'),
          typescript: versionOf('typescript'),
          '@types/node': versionOf('@types/node'),
        },
      }),
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
        },
        include: ['test'],
      }),
    );
    writeFileSync(join(project, 'scenarios', 'tiny.yaml'), SCENARIO);
    writeFileSync(join(project, 'test', 'device.test.ts'), TEST);

    // The cache `npm ci` filled answers; the registry only for what it lacks. No install scripts: the
    // package needs none.
    const install = await execa(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'],
      { cwd: project, reject: false, timeout: 240_000 },
    );
    expect(install.exitCode, install.stderr).toBe(0);

    const tsc = await execa('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], {
      cwd: project,
      reject: false,
      timeout: 120_000,
    });
    expect(tsc.exitCode, `${tsc.stdout}\n${tsc.stderr}`).toBe(0);

    // Its own vitest, not this one's: a clean environment without this run's VITEST_* variables.
    const run = await execa('npx', ['--no-install', 'vitest', 'run', '--reporter=json'], {
      cwd: project,
      reject: false,
      timeout: 120_000,
      extendEnv: false,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? dir,
        FIELDLAB_STATE_DIR: join(project, 'state'),
      },
    });
    expect(run.exitCode, `${run.stdout}\n${run.stderr}`).toBe(0);
    const report = JSON.parse(run.stdout) as { numPassedTests: number; numFailedTests: number };
    expect(report).toMatchObject({ numPassedTests: 3, numFailedTests: 0 });
  }, 420_000);
});
