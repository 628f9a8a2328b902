import type { z } from 'zod';
import { FieldlabError } from './errors.js';

/** Renders a zod issue path as `a.b[2].c`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(root)' : out;
}

/**
 * Validates options at a simulator's (or any module's) boundary. Throws `E_BAD_OPTION` naming the first
 * bad field, e.g. `connect-proxy: options.port: expected number, received string`.
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, owner: string): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const lines = result.error.issues.map((i) => `options.${formatPath(i.path)}: ${i.message}`);
  throw new FieldlabError('E_BAD_OPTION', `${owner}: ${lines.join('; ')}`, {
    where: `${owner} options`,
    hint: `fix the option${lines.length > 1 ? 's' : ''} named above; see the ${owner} section of the README`,
  });
}
