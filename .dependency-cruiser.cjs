/**
 * fieldlab's folder rules (DESIGN.md "Layout": harness → simulators → pki, one way), checked by
 * `npm run lint` (`depcruise harness simulators`) and by test/lint/architecture.test.ts, which also
 * reads the module graph this config gives and names every cycle between the top folders of harness/.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-harness-folder-cycles',
      severity: 'error',
      comment:
        'Folders of harness/ depend on each other one way: a cycle (lab → topology → lab) means a module is ' +
        'in the wrong folder. Move the shared part down to where both sides can import it.',
      scope: 'folder',
      from: { path: '^harness/' },
      to: { path: '^harness/', circular: true },
    },
    {
      name: 'simulators-not-to-harness',
      severity: 'error',
      comment:
        'A simulator is a server with no knowledge of scenarios or labs: it never imports harness code ' +
        '(the harness composes simulators, not the other way round).',
      from: { path: '^simulators/' },
      to: { path: '^harness/' },
    },
  ],
  options: {
    // Type-only imports count: a folder that needs another's types depends on it.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist)/|\\.test\\.ts$' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
};
