// Builds the f64 SIMD linear-algebra kernels: assembly/linalg/index.ts → build/linalg.wasm (with its own
// assembly/linalg/asconfig.json, separate from the codec build). Skips when the output is newer than the sources,
// because it runs before tests and benchmarks. `--force` rebuilds.
import { mkdir, readdir, rename, stat, readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const sourceDir = join(root, "assembly", "linalg");
const outFile = join(root, "build", "linalg.wasm");

async function mtimeOrNull(path) {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return null;
  }
}

async function isUpToDate() {
  const sources = (await readdir(sourceDir)).map((name) => join(sourceDir, name));
  sources.push(fileURLToPath(import.meta.url));
  const newest = Math.max(...(await Promise.all(sources.map(mtimeOrNull))).filter((t) => t !== null));
  const out = await mtimeOrNull(outFile);
  return out !== null && out > newest;
}

async function build() {
  const { default: asc } = await import("assemblyscript/asc");
  const tmp = `${outFile}.${process.pid}.tmp`;
  const stderr = [];
  const argv = [
    "--config", join(sourceDir, "asconfig.json"), "--target", "release",
    join(sourceDir, "index.ts"), "--outFile", tmp,
  ];
  const { error } = await asc.main(argv, {
    stdout: { write: () => true },
    stderr: { write: (chunk) => (stderr.push(String(chunk)), true) },
  });
  if (error) throw new Error(`asc assembly/linalg/index.ts failed: ${error.message}\n${stderr.join("")}`);
  // Validate before the atomic rename, so a broken module never replaces a good one.
  await WebAssembly.compile(await readFile(tmp));
  await rename(tmp, outFile);
}

await mkdir(join(root, "build"), { recursive: true });
if (process.argv.includes("--force") || !(await isUpToDate())) {
  await build();
  process.stderr.write(`built ${outFile}\n`);
}
