// dependency-cruiser: the import graph of src/ and the rules on it.
//   npm run graph        writes docs/import-graph.txt: one `from → to` line per import, so a
//                        change in layering shows in its diff.
//   npm run graph:svg    docs/import-graph.svg (needs graphviz's `dot`).
//   npm run graph:check  (part of npm run lint) fails on a rule of severity error; lists
//                        warnings and the cross-area imports (infos).
//
// An "area" is a top-level entry of src/: a folder (auth, backends, http, interop, run, telemetry)
// or a file (app.ts, config.ts, errors.ts, log.ts, server.ts, ...). app.ts and server.ts wire the
// areas together, so they may import from any of them.
/** @type {import('dependency-cruiser').IConfiguration} */
// Layers, bottom to top; a module imports only from its own layer or below ("upward" imports
// are errors):
//   base      errors.ts, log.ts, runtime-template.ts (leaves: they import nothing of src/)
//   model     run/block.ts (a block and its hash), backends/backend.ts (the Backend contract),
//             telemetry/names.ts and telemetry/spans.ts (what every layer traces with)
//   services  everything else: config, auth, http, run, backends, the rest of telemetry
//   routes    app.ts, server.ts, interop/, api/ (the HTTP surface, its document, the entry point)
const BASE = '^src/(errors|log|runtime-template)[.]ts$'
const MODEL = [
  '^src/run/block[.]ts$',
  '^src/backends/backend[.]ts$',
  '^src/telemetry/(names|spans)[.]ts$',
]
const ROUTES = ['^src/(app|server)[.]ts$', '^src/interop/', '^src/api/']

module.exports = {
  forbidden: [
    {
      name: 'base-imports-nothing-above',
      severity: 'error',
      comment: 'errors.ts, log.ts and runtime-template.ts are the base every layer imports.',
      from: { path: BASE },
      to: { path: '^src/', pathNot: BASE },
    },
    {
      name: 'model-imports-only-base',
      severity: 'error',
      comment:
        'The model (a block, the Backend contract, span names) is imported by services and routes, never the reverse.',
      from: { path: MODEL },
      to: { path: '^src/', pathNot: [BASE, ...MODEL] },
    },
    {
      name: 'only-routes-import-routes',
      severity: 'error',
      comment: 'Services never import the HTTP surface or the entry point.',
      from: { path: '^src/', pathNot: ROUTES },
      to: { path: ROUTES },
    },
    {
      name: 'local-backend-is-private',
      severity: 'error',
      comment:
        'src/backends/local/ is the local backend: the rest of blockgate reaches it only through ' +
        'the Backend interface (src/backends/backend.ts). Only the list of backends ' +
        '(src/backends/index.ts) constructs it.',
      from: { path: '^src/', pathNot: ['^src/backends/local/', '^src/backends/index[.]ts$'] },
      to: { path: '^src/backends/local/' },
    },
    {
      name: 'e2b-backend-is-private',
      severity: 'error',
      comment: 'As for local/: only src/backends/index.ts reaches into src/backends/e2b/.',
      from: { path: '^src/', pathNot: ['^src/backends/e2b/', '^src/backends/index[.]ts$'] },
      to: { path: '^src/backends/e2b/' },
    },
    {
      name: 'config-imports-no-backend',
      severity: 'error',
      comment:
        'src/config.ts reads the environment for every area: it should not depend on a backend ' +
        '(a backend default it needs belongs in config.ts, or the backend reads its own setting).',
      from: { path: '^src/config[.]ts$' },
      to: { path: '^src/backends/' },
    },
    {
      name: 'cross-area-from-folder',
      severity: 'info',
      comment:
        'A module in one folder of src/ imports a module in another folder of src/ (e.g. ' +
        'src/backends/* importing src/telemetry/*). Listed, not forbidden: each is a coupling ' +
        'between two areas worth knowing about.',
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/[^/]+/', pathNot: '^src/$1/' },
    },
    {
      name: 'cross-area-from-top-file',
      severity: 'info',
      comment:
        'A top-level module of src/ other than the wiring (app.ts, server.ts) imports a module ' +
        'inside a folder of src/ (e.g. src/config.ts importing src/backends/*): the shared base ' +
        'depending on an area built on top of it.',
      from: { path: '^src/[^/]+[.]ts$', pathNot: '^src/(app|server)[.]ts$' },
      to: { path: '^src/[^/]+/' },
    },
    {
      name: 'no-circular',
      severity: 'warn',
      comment: 'An import cycle inside src/.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to no file.',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
    {
      name: 'no-test-code-in-src',
      severity: 'error',
      comment: 'src/ must not import test/ or bench/ code.',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    // Type-only imports count: they couple modules as much as value imports for a reader.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    // Bun's own modules are built in here, like node's.
    builtInModules: { add: ['bun', 'bun:test', 'bun:sqlite', 'bun:ffi', 'bun:jsc'] },
    // The serializers/ modules src/ imports show as leaves; npm packages are not followed.
    doNotFollow: { path: ['node_modules', '^serializers/'] },
    // Only our own modules in the graph (externals and builtins would swamp it).
    includeOnly: '^(src|serializers)/',
    exclude: { path: ['node_modules', '[.]test[.]ts$'] },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['bun', 'import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
    },
    reporterOptions: {
      text: { highlightFocused: false },
      dot: { collapsePattern: 'node_modules/(?:@[^/]+/[^/]+|[^/]+)' },
    },
  },
}
