// Builds the npm package in client/dist: one ESM bundle (browser and Node; onnxruntime-web stays the caller's, passed
// in as a module) and the type declarations, with `.ts` import specifiers rewritten to `.js` so any consumer resolves
// them. `node client/scripts/build.mjs [--out DIR]`.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const CLIENT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ROOT = resolve(CLIENT, "..");
const outIndex = process.argv.indexOf("--out");
const out = outIndex >= 0 ? resolve(process.argv[outIndex + 1]) : join(CLIENT, "dist");

rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: [join(CLIENT, "index.ts")],
  outfile: join(out, "index.js"),
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  mainFields: ["module", "main"],
  external: ["onnxruntime-web"],
  sourcemap: true,
  logLevel: "warning",
});

const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
execFileSync(process.execPath, [tsc, "-p", join(CLIENT, "tsconfig.build.json"), "--outDir", join(out, "types")], { stdio: "inherit", cwd: ROOT });

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith(".d.ts")) writeFileSync(p, readFileSync(p, "utf8").replace(/(from\s+["']\.{1,2}\/[^"']*?)\.ts(["'])/g, "$1.js$2").replace(/(import\(["']\.{1,2}\/[^"']*?)\.ts(["']\))/g, "$1.js$2"));
  }
}
walk(join(out, "types"));
process.stderr.write(`@mla-edge/client built in ${out}\n`);
