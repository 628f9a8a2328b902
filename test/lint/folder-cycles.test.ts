import { describe, expect, it } from 'vitest';
import { describeCycles, folderCycles, harnessFolderOf } from './folder-cycles.js';

describe('folder cycles of harness/', () => {
  it('names a folder by its first segment under harness/, and a file right under harness/ by itself', () => {
    expect(harnessFolderOf('harness/topology/netns/apply.ts')).toBe('topology');
    expect(harnessFolderOf('harness/vitest.ts')).toBe('vitest.ts');
    expect(harnessFolderOf('simulators/pki/index.ts')).toBeUndefined();
  });

  it('finds a cycle through a nested folder, with the imports that close it', () => {
    const cycles = folderCycles([
      { from: 'harness/lab/lab.ts', to: 'harness/topology/netns/apply.ts' },
      { from: 'harness/topology/plan.ts', to: 'harness/lab/addresses.ts' },
      { from: 'harness/lab/lab.ts', to: 'harness/faults/index.ts' },
      { from: 'harness/lab/lab.ts', to: 'harness/lab/timeline.ts' },
      { from: 'harness/lab/lab.ts', to: 'simulators/pki/index.ts' },
    ]);
    expect(cycles).toEqual([
      {
        folders: ['lab', 'topology'],
        edges: [
          {
            from: 'lab',
            to: 'topology',
            imports: [{ from: 'harness/lab/lab.ts', to: 'harness/topology/netns/apply.ts' }],
          },
          {
            from: 'topology',
            to: 'lab',
            imports: [{ from: 'harness/topology/plan.ts', to: 'harness/lab/addresses.ts' }],
          },
        ],
      },
    ]);
    expect(describeCycles(cycles)).toContain(
      'lab → topology: harness/lab/lab.ts imports harness/topology/netns/apply.ts',
    );
  });

  it('finds a longer cycle as one set, and none in a graph that only points one way', () => {
    const round = folderCycles([
      { from: 'harness/a/x.ts', to: 'harness/b/x.ts' },
      { from: 'harness/b/x.ts', to: 'harness/c/x.ts' },
      { from: 'harness/c/x.ts', to: 'harness/a/y.ts' },
    ]);
    expect(round.map((c) => c.folders)).toEqual([['a', 'b', 'c']]);
    expect(
      folderCycles([
        { from: 'harness/a/x.ts', to: 'harness/b/x.ts' },
        { from: 'harness/b/x.ts', to: 'harness/c/x.ts' },
        { from: 'harness/a/x.ts', to: 'harness/c/x.ts' },
      ]),
    ).toEqual([]);
  });
});
