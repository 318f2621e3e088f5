// The import rules of docs/architecture.md ("floors"), checked by tests/architecture/dependency-graph.test.ts in
// `npm test` (and by hand: `npm run -s check:deps`). Imports only run downward, never in a loop:
//   1 format/ (nothing of ours), assembly/
//   2 checkpoint/, kernels/, worker/ (each: format/ only)
//   3 runtime/ (format/, checkpoint/, kernels/)
//   4 convert/ (everything below), client/ (format/, runtime/)
//   5 bin/, scripts/, client/demo/ and client/scripts/ (applications and build scripts), tests/
// Node-only code (node: modules) in the browser-safe floors lives in files named *.node.ts (or in convert/).
const OURS = "^(format|assembly|checkpoint|kernels|worker|runtime|convert|client|bin|scripts|tests)/";
const TOP = "^(bin|scripts|tests|client/demo|client/scripts)/";

/** A rule: files under `from` may import of ours only what `allowed` matches. */
const only = (name, from, allowed, comment) => ({
  name,
  comment,
  severity: "error",
  from: { path: from, pathNot: TOP },
  to: { path: OURS, pathNot: allowed },
});

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "no import loop, type-only imports included",
      severity: "error",
      from: {},
      to: { circular: true },
    },
    only("format-imports-nothing-of-ours", "^format/", "^format/", "floor 1: format/ is what the edge and the client share"),
    only("checkpoint-imports-format-only", "^checkpoint/", "^(format|checkpoint)/", "floor 2"),
    only("kernels-imports-format-only", "^kernels/", "^(format|kernels)/", "floor 2"),
    only("worker-imports-format-only", "^worker/", "^(format|worker)/", "floor 2: the edge store knows only the shared formats"),
    only("runtime-imports-format-checkpoint-kernels", "^runtime/", "^(format|checkpoint|kernels|runtime)/", "floor 3"),
    only("convert-imports-below", "^convert/", "^(format|assembly|checkpoint|kernels|worker|runtime|convert)/", "floor 4"),
    only("client-imports-format-runtime", "^client/", "^(format|runtime|client)/", "floor 4: the SDK sits on runtime/ and format/"),
    {
      name: "nothing-imports-the-top",
      comment: "bin/, scripts/, tests/, client/demo/ and client/scripts/ are on top: library code never imports them",
      severity: "error",
      from: { path: OURS, pathNot: TOP },
      to: { path: TOP },
    },
    {
      name: "client-internal-is-a-leaf",
      comment: "client/internal/ is private plumbing: it does not import the public resources",
      severity: "error",
      from: { path: "^client/internal/" },
      to: { path: "^client/(resources|chat)/|^client/(client|index)\\.ts$" },
    },
    {
      name: "browser-safe-without-node",
      comment: "format/, checkpoint/, kernels/, runtime/ and the SDK run in browsers and workerd: Node modules only in *.node.ts",
      severity: "error",
      from: { path: "^(format|checkpoint|kernels|runtime|client)/", pathNot: "\\.node\\.ts$|^client/(demo|scripts)/" },
      to: { dependencyTypes: ["core"] },
    },
    {
      name: "not-to-unresolvable",
      comment: "every import resolves (workerd's cloudflare: modules excepted)",
      severity: "error",
      from: {},
      to: { couldNotResolve: true, pathNot: "^cloudflare:" },
    },
  ],
  options: {
    // TypeScript 7 has no JS compiler API; dependency-cruiser parses .ts with @swc/core.
    parser: "swc",
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|build|fixtures)/|/dist/|\\.d\\.ts$" },
    enhancedResolveOptions: {
      extensions: [".ts", ".mts", ".mjs", ".js", ".cjs", ".json"],
      exportsFields: ["exports"],
      conditionNames: ["types", "import", "require", "node", "workerd", "default"],
    },
    moduleSystems: ["es6", "cjs"],
  },
};
