import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { isFieldlabError } from '../../simulators/common/errors.js';
import { buildLocalproxyCommand } from '../localproxy/cli.js';
import { toolVersion } from '../version.js';

/**
 * The fieldlab CLI. Exit codes: 0 all good; 1 a scenario variant failed or errored; 2 bad input (a
 * scenario file, an option, a missing lab); 70 a fieldlab bug.
 */
// Each command's module loads only when that command runs: `--help` and `clean` stay instant instead
// of loading every simulator.
const lazy =
  <A extends unknown[]>(load: () => Promise<(...args: A) => Promise<void>>) =>
  async (...args: A): Promise<void> =>
    (await load())(...args);

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return n;
}

function collect(v: string, prev: string[]): string[] {
  return [
    ...prev,
    ...v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

export function buildProgram(): Command {
  const program = new Command()
    .name('fieldlab')
    .description(
      'Rebuild the network path between IoT devices and their clouds on one machine, and run real clients through its failures.',
    )
    .version(toolVersion())
    .showHelpAfterError('(add --help for usage)');

  program
    .command('run')
    .description(
      'run scenarios (files or directories; default: ./scenarios) and report pass/fail with phase timings',
    )
    .argument('[paths...]', 'scenario files (.yaml, .js) or directories', [])
    .addOption(
      new Option(
        '-r, --reporter <names>',
        'reporters, comma-separated or repeated: console, json, junit, html',
      )
        .argParser(collect)
        .default([] as string[], 'console,json,junit'),
    )
    .option('-o, --out <dir>', 'directory for the JSON, JUnit and HTML reports', 'fieldlab-report')
    .option(
      '--only <selector>',
      'run only this scenario, or scenario/variant (repeatable, comma-separated)',
      collect,
      [] as string[],
    )
    .addOption(
      new Option('-b, --backend <name>', 'network backend')
        .choices(['loopback', 'netns', 'container'])
        .default('loopback'),
    )
    .option(
      '--image <name>',
      'container backend: the fieldlab image (default $FIELDLAB_IMAGE, else fieldlab:local; scripts/docker-image.sh builds it)',
    )
    .option(
      '-j, --concurrency <n>',
      'variants run at once (each in its own lab); default: CPUs, at least 2',
      positiveInt,
    )
    .option(
      '--max-events <n>',
      "each variant's lab timeline holds at most n events, routine ones dropped before evidence (default 10000)",
      positiveInt,
    )
    .option('--no-color', 'no colours in the console report')
    .action(lazy(async () => (await import('./run.js')).runCommand));

  program
    .command('init')
    .description(
      'write a starter scenario for your own device program: the cloud persona, its connection values as env, the usual field failures as variants',
    )
    .requiredOption(
      '--client <command>',
      'the command that runs your device program, e.g. "python3 my_device.py"',
    )
    .addOption(
      new Option('--cloud <cloud>', 'the cloud your device talks to')
        .choices(['azure', 'aws', 'mqtt', 'https'])
        .makeOptionMandatory(),
    )
    .option('--proxy', 'the device goes through an authenticating HTTP proxy (its usual setting)')
    .option('-o, --out <file>', 'where to write the scenario (- for standard output; default <name>.yaml)')
    .option('--name <name>', "the scenario's name (default from the program's file name)")
    .option('--force', 'overwrite the file if it exists')
    .action(lazy(async () => (await import('./init.js')).initCommand));

  program
    .command('doctor')
    .description(
      "check this machine's network to its cloud endpoints: DNS, TCP per port, the proxy, the TLS chain (inspection), the clock",
    )
    .option(
      '--azure <hub>',
      'an IoT Hub host name (ports 443, 5671, 8883; repeatable)',
      collect,
      [] as string[],
    )
    .option('--dps <endpoint>', 'a DPS endpoint (ports 443, 5671, 8883; repeatable)', collect, [] as string[])
    .option('--aws <endpoint>', 'an AWS IoT endpoint (ports 8883, 443; repeatable)', collect, [] as string[])
    .option(
      '--tunnel <region>',
      "AWS secure tunneling's endpoints in a region (443; repeatable)",
      collect,
      [] as string[],
    )
    .option('--endpoint <host:port>', 'any endpoint (repeatable)', collect, [] as string[])
    .option('--proxy <url>', 'go through this proxy, http://[user:pass@]host:port (default $https_proxy)')
    .option(
      '--dns-server <address[:port]>',
      'resolve with this DNS server (default the system resolver); repeated: compare their answers',
      collect,
      [] as string[],
    )
    .option('--ca <file>', "PEM roots the device trusts (default Node's public roots)")
    .option('--timeout <ms>', 'per check', positiveInt, 5000)
    .option('--json', 'print the checks as JSON')
    .option(
      '--emit-scenario <file>',
      'also write what it found as a scenario that reproduces it in the lab (and <name>-dns.yaml beside it for DNS failures)',
    )
    .option('--force', 'overwrite the --emit-scenario file if it exists')
    .action(lazy(async () => (await import('./doctor.js')).doctorCommand));

  program
    .command('up')
    .description(
      'start a lab (a scenario file, or a file with name + lab), print its endpoints and env, keep it up until Ctrl-C',
    )
    .argument('<file>', 'lab or scenario file (.yaml)')
    .option('--variant <name>', "apply this variant's faults and option overrides")
    .option('--json', 'print the endpoints as one JSON line instead of a table')
    .option(
      '--max-events <n>',
      'the lab event timeline holds at most n events, the oldest dropped first (default 10000)',
      positiveInt,
    )
    .action(lazy(async () => (await import('./up.js')).upCommand));

  program
    .command('ca')
    .description(
      "write a running lab's trust bundle (its root CA) to a file, to add to a device's or OS trust store",
    )
    .option('--lab <id>', 'lab id (see `fieldlab up`); default: the only running lab')
    .option('-o, --out <file>', 'where to write the PEM bundle', 'fieldlab-ca.pem')
    .action(lazy(async () => (await import('./ca.js')).caCommand));

  program
    .command('clean')
    .description(
      'remove what crashed or killed labs left behind: their processes, files, address claims, network namespaces and containers',
    )
    .option('--force', 'also remove labs whose owner process still runs')
    .action(lazy(async () => (await import('./clean.js')).cleanCommand));

  program
    .command('list')
    .description('list scenarios with their variants and expected outcomes, or the simulator types')
    .argument('[paths...]', 'scenario files or directories (default: ./scenarios)', [])
    .option('--simulators', 'list simulator types instead')
    .action(lazy(async () => (await import('./list.js')).listCommand));

  program
    .command('load')
    .description('load-test the lab tunnel service with k6 (or the built-in Node driver where k6 is absent)')
    .addArgument(new Argument('<kind>', 'what to measure').choices(['tunnel', 'tunnel-open-rate']))
    .option('--vus <n>', 'virtual users', '4')
    .option('--duration <d>', 'how long, e.g. 10s, 1m', '10s')
    .option('-o, --out <dir>', 'where k6-summary.json goes', 'fieldlab-load')
    .addOption(
      new Option('--driver <name>', 'k6 or the built-in node driver (default: k6 when installed)').choices([
        'k6',
        'node',
      ]),
    )
    .action(lazy(async () => (await import('../load/index.js')).loadCommand));

  program.addCommand(buildLocalproxyCommand('localproxy'));

  program
    .command('serve')
    .description(
      'run one simulator (any type `fieldlab list --simulators` shows) as its own process, configured with its options as JSON',
    )
    .argument('<simulator>', 'a simulator type, as `fieldlab list --simulators` lists them')
    .option('--options <json>', "the simulator's options as a JSON object (see its README section)")
    .option('--options-file <file>', 'the same, from a file')
    .option('--host <address>', 'address to bind (overrides options.host)')
    .option('--port <port>', 'port to bind (overrides options.port)', (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535)
        throw new InvalidArgumentError('expected a port number 0–65535');
      return n;
    })
    .option('--events', 'print every simulator event as a JSON line')
    .option('--ready-file <file>', 'also write the ready line here (env FIELDLAB_READY_FILE), for `health`')
    .action(lazy(async () => (await import('./serve.js')).serveCommand));

  program
    .command('serve-lab')
    .description(
      'run a simulator of a lab, with the peers it works with, in a process of its own (a container, a network namespace; the lab starts it)',
    )
    .argument('<spec>', 'the JSON spec the lab wrote (0600: it holds the lab CA)')
    .action(lazy(async () => (await import('./serve-lab.js')).serveLabCommand));

  program
    .command('health')
    .description(
      "exit 0 when the simulator `serve` started answers on every TCP endpoint (a container's healthcheck)",
    )
    .option('--ready-file <file>', "serve's ready file (default env FIELDLAB_READY_FILE)")
    .option('--timeout <ms>', 'per endpoint', positiveInt, 2000)
    .action(lazy(async () => (await import('./health.js')).healthCommand));

  program
    .command('pki')
    .description(
      'create a lab CA and server certificates in a directory (for containers: a shared volume); keeps existing ones',
    )
    .requiredOption('-d, --dir <dir>', 'where ca.pem, <name>.pem and <name>-key.pem go')
    .option(
      '-s, --server <names>',
      'a server certificate for these names (first = file name; comma-separated; repeatable)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .action(lazy(async () => (await import('./pki.js')).pkiCommand));

  program
    .command('schema')
    .description('print the JSON Schema of scenario files (or write it with --out)')
    .option('-o, --out <file>', 'write it to this file')
    .action(lazy(async () => (await import('./schema.js')).schemaCommand));

  return program;
}

/** Makes commander throw instead of exiting, on every command (subcommands added whole included). */
function throwOnUsageError(cmd: Command): Command {
  cmd.exitOverride();
  for (const sub of cmd.commands) throwOnUsageError(sub);
  return cmd;
}

export async function main(argv = process.argv): Promise<number> {
  try {
    await throwOnUsageError(buildProgram()).parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end with 0; a usage error (unknown flag, bad value) is bad input: 2.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (isFieldlabError(err)) {
      process.stderr.write(`fieldlab: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
      return 2;
    }
    process.stderr.write(
      `fieldlab: internal error (a bug; please report it):\n${err instanceof Error ? err.stack : String(err)}\n`,
    );
    return 70;
  }
}
