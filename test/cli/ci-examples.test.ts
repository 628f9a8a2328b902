import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { splitCommand } from '../../harness/cli/init.js';
import { REPORT_FILES } from '../../harness/report/index.js';
import { assertBuilt, cli } from '../helpers/cli.js';

/**
 * examples/ci: the GitHub Actions workflow and the GitLab CI job a user copies. Their fieldlab commands
 * must exist with the options they use, the report paths they publish must be where `fieldlab run`
 * writes them, and the Debian packages they install must be ones the project itself sets up.
 */

interface Workflow {
  jobs: Record<
    string,
    {
      'runs-on': string;
      container?: { image: string };
      steps: Array<{ run?: string; uses?: string; with?: Record<string, string> }>;
    }
  >;
}
interface GitlabJob {
  image: string;
  before_script: string[];
  script: string[];
  artifacts: { when: string; paths: string[]; reports: { junit: string } };
}

const github = parse(readFileSync('examples/ci/github-actions.yml', 'utf8')) as Workflow;
const gitlab = (parse(readFileSync('examples/ci/gitlab-ci.yml', 'utf8')) as Record<string, GitlabJob>)
  .fieldlab!;
const ghJob = github.jobs.scenarios!;

/** Shell lines of a script block, with `\` continuations joined. */
const lines = (script: string): string[] =>
  script
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);

const CI = {
  github: ghJob.steps.flatMap((s) => (s.run ? lines(s.run) : [])),
  gitlab: [...gitlab.before_script, ...gitlab.script].flatMap(lines),
};

/** The `npx fieldlab ...` commands of a CI file, as argv after `fieldlab`. */
const fieldlabCommands = (all: string[]) =>
  all.filter((l) => l.startsWith('npx fieldlab ')).map((l) => splitCommand(l).slice(2));

/** The value of `--name v` in an argv. */
const flag = (argv: string[], name: string) => argv[argv.indexOf(name) + 1];

const setupPackages = new Set(
  /APT_PACKAGES=\(([^)]*)\)/.exec(readFileSync('scripts/setup.sh', 'utf8'))![1]!.split(/\s+/).filter(Boolean),
);

let tmp: string;
beforeAll(() => {
  assertBuilt();
  tmp = mkdtempSync(join(tmpdir(), 'fl-ci-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.each(Object.entries(CI))('examples/ci: %s', (which, commands) => {
  const fieldlab = fieldlabCommands(commands);
  const run = fieldlab.find((a) => a[0] === 'run')!;
  const out = flag(run ?? [], '--out');
  const reporters = (flag(run ?? [], '--reporter') ?? '').split(',');

  it('runs `fieldlab run` with the JUnit and HTML reporters into one directory', () => {
    expect(run).toBeDefined();
    expect(reporters).toEqual(expect.arrayContaining(['junit', 'html']));
    expect(out).toBeTruthy();
  });

  it('uses only commands and options the CLI has', async () => {
    expect(fieldlab.length).toBeGreaterThan(0);
    for (const argv of fieldlab) {
      const help = await cli([argv[0]!, '--help']);
      expect(help.code, `fieldlab ${argv[0]} --help`).toBe(0);
      for (const option of argv.filter((a) => a.startsWith('--'))) expect(help.stdout).toContain(option);
    }
    for (const r of reporters) expect(['console', ...Object.keys(REPORT_FILES)]).toContain(r);
  });

  it('publishes the reports where `fieldlab run` writes them', () => {
    const junit = `${out}/${REPORT_FILES.junit}`;
    const html = `${out}/${REPORT_FILES.html}`;
    if (which === 'github') {
      const publish = ghJob.steps.find((s) => s.uses?.startsWith('mikepenz/action-junit-report@'));
      expect(publish?.with?.report_paths).toBe(junit);
      const upload = ghJob.steps.find((s) => s.uses?.startsWith('actions/upload-artifact@'));
      expect(lines(upload?.with?.path ?? '')).toEqual(expect.arrayContaining([html, junit]));
    } else {
      expect(gitlab.artifacts.reports.junit).toBe(junit);
      expect(gitlab.artifacts.paths).toContain(html);
      expect(gitlab.artifacts.when).toBe('always');
    }
  });

  it('runs on Debian and installs only Debian packages the project sets up', () => {
    expect(which === 'github' ? ghJob.container?.image : gitlab.image).toMatch(/bookworm/);
    const install = commands.find((l) => l.includes('apt-get install'));
    const packages = splitCommand(install!.replace(/^.*apt-get install/, '')).filter(
      (w) => !w.startsWith('-'),
    );
    expect(packages.length).toBeGreaterThan(0);
    for (const p of packages) expect(setupPackages, p).toContain(p);
  });

  it('its run command writes those reports (on a small scenario instead of scenarios/)', async () => {
    const dir = join(tmp, which);
    mkdirSync(join(dir, 'scenarios'), { recursive: true });
    writeFileSync(
      join(dir, 'scenarios', 'tiny.yaml'),
      [
        'name: tiny',
        'title: A device fetches from its cloud endpoint',
        'lab: { simulators: [{ name: api, type: https-server, host: api.iot.example.com }] }',
        "client: { type: probe, url: '${api.url}', timeout: 5s }",
        'variants:',
        '  - { name: broken-untrusted, client: { trust: system }, expect: { result: fail, class: tls.untrusted-root } }',
        '  - { name: fixed, expect: pass }',
        '',
      ].join('\n'),
    );
    const r = await cli(run!, { cwd: dir, env: { FIELDLAB_STATE_DIR: join(dir, 'state') } });
    expect(r.code, r.stderr).toBe(0);
    for (const rep of reporters.filter((x) => x !== 'console')) {
      expect(existsSync(join(dir, out!, REPORT_FILES[rep as keyof typeof REPORT_FILES]))).toBe(true);
    }
    const junit = new XMLParser({ ignoreAttributes: false }).parse(
      readFileSync(join(dir, out!, REPORT_FILES.junit), 'utf8'),
    ) as { testsuites: { '@_tests': string } };
    expect(junit.testsuites['@_tests']).toBe('2');
    expect(readFileSync(join(dir, out!, REPORT_FILES.html), 'utf8')).toContain('broken-untrusted');
  });
});
