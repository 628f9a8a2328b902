import { writeFileSync } from 'node:fs';
import { scenarioJsonSchema } from '../scenario/model.js';

export function schemaText(): string {
  return `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`;
}

export async function schemaCommand(flags: { out?: string }): Promise<void> {
  if (flags.out) {
    writeFileSync(flags.out, schemaText());
    process.stdout.write(`wrote ${flags.out}\n`);
  } else process.stdout.write(schemaText());
}
