import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { createLabLookup } from '../../harness/lab/lookup.js';

/** The lab's lookup answers both shapes Node asks for: one address, or every address (`all: true`). */
describe('createLabLookup', () => {
  const lookup = createLabLookup(new Map([['api.lab.example', '127.20.0.2']]));
  const ask = (name: string, all: boolean) =>
    new Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number }>(
      (resolve) => lookup(name, { all }, (err, address, family) => resolve({ err, address, family })),
    );

  it('answers a lab name with its address, or as a list when asked for all', async () => {
    expect(await ask('api.lab.example', false)).toEqual({ err: null, address: '127.20.0.2', family: 4 });
    expect((await ask('API.lab.example.', true)).address).toEqual([{ address: '127.20.0.2', family: 4 }]);
  });

  it('fails a name the lab does not know (ENOTFOUND), never asking real DNS', async () => {
    const r = await ask('elsewhere.example', false);
    expect(r.err?.code).toBe('ENOTFOUND');
  });
});
