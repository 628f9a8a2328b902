import { hostname } from 'node:os';
import { FieldlabError } from '../../../simulators/common/errors.js';
import type { Lab } from '../../lab/lab.js';
import { pickedResolverAddress } from '../../lab/lab-dns.js';
import type { CommandRun } from '../types.js';

/**
 * The /etc/netns files of the client's namespace for a run whose scenario picks the device's resolver
 * (`client.resolver`): resolv.conf names that resolver alone, and the hosts file holds only localhost
 * and the machine's own name (as Debian's does), so every lab name the client looks up is a query to it.
 */
export function clientNameFiles(
  lab: Lab,
  run: Pick<CommandRun, 'resolve'> & { resolver: string },
): { resolvConf: string; hosts: string } {
  const { resolver } = run;
  if (run.resolve !== 'lab') {
    throw new FieldlabError(
      'E_SCENARIO',
      `client resolver ${resolver} needs client.resolve: lab (with resolve: none the program resolves as the machine does)`,
      { hint: 'remove `resolve: none` from the client, or its resolver' },
    );
  }
  // Checked as on loopback: a running resolver on port 53 (a resolver declared there makes it the lab's DNS).
  const address = pickedResolverAddress(lab.dns, resolver, lab.simulators.get(resolver));
  const hosts = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  const self = hostname();
  if (self && self !== 'localhost') hosts.push(`127.0.1.1\t${self}`);
  return {
    resolvConf: `# fieldlab netns lab: the client's resolver ${resolver}\nnameserver ${address}\n`,
    hosts: `# fieldlab netns lab: names go to ${resolver}\n${hosts.join('\n')}\n`,
  };
}
