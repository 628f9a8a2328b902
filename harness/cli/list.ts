import { formatMs } from '../../simulators/common/duration.js';
import { FieldlabError } from '../../simulators/common/errors.js';
import { listAdapters } from '../adapters/index.js';
import { loadScenarios } from '../scenario/load.js';
import { defaultScenarioPaths } from './paths.js';

export async function listCommand(paths: string[], flags: { simulators?: boolean }): Promise<void> {
  if (flags.simulators) {
    for (const a of listAdapters()) process.stdout.write(`${a.type.padEnd(16)} ${a.summary}\n`);
    return;
  }
  const { loaded, errors } = await loadScenarios(defaultScenarioPaths(paths));
  for (const { file, scenario: s } of loaded) {
    process.stdout.write(`${s.name}  ${s.title}  (${file}; ${s.backends.join('/')})\n`);
    for (const v of s.variants) {
      const e = v.expect;
      const exp = e.result === 'pass' ? 'pass' : `fail ${'class' in e ? e.class : ''}`;
      const within = 'within' in e && e.within !== undefined ? ` within ${formatMs(e.within)}` : '';
      process.stdout.write(
        `  ${v.name.padEnd(28)} expect ${exp}${within}${v.description ? `  ${v.description}` : ''}\n`,
      );
    }
  }
  if (errors.length > 0) {
    throw new FieldlabError('E_SCENARIO', errors.map((e) => e.message).join('\n'), {
      hint: errors[0]?.hint ?? '',
    });
  }
}
