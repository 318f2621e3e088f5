// Packs what the real-GPU kernels check needs into .gpu/ (git-ignored) for a bare GPU machine with no Node and no
// registry: the official Node binary, dawn.node, onnxruntime-web's WebGPU build (xz-compressed, ~33 MB in all) and
// esbuild bundles of the correctness runner and the kernels benchmark. scripts/gpu-check.sh unpacks and runs them there.
// Usage: node scripts/pack-gpu-check.mjs && (copy the repo with .gpu/ to the GPU machine) && bash scripts/gpu-check.sh
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { build } from "esbuild";

const root = resolve(import.meta.dirname, "..");
const out = join(root, ".gpu");
rmSync(out, { recursive: true, force: true });
for (const d of ["ort", "node_modules/webgpu/dist/linux-x64"]) mkdirSync(join(out, d), { recursive: true });

await build({
  entryPoints: [join(root, "tests/bench/kernels-node-runner.ts"), join(root, "tests/kernels/node-webgpu-runner.ts")],
  outbase: join(root, "tests"),
  outdir: out,
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["webgpu"],
  logLevel: "warning",
});

const xz = (src, dst) => execFileSync("sh", ["-c", `xz -T2 -6 -c "${src}" > "${dst}"`]);
const ortDist = join(root, "node_modules/onnxruntime-web/dist");
const webgpu = join(root, "node_modules/webgpu");
for (const f of ["package.json", "index.js"]) copyFileSync(join(webgpu, f), join(out, "node_modules/webgpu", f));
for (const f of ["ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs"]) copyFileSync(join(ortDist, f), join(out, "ort", f));
xz(process.execPath, join(out, "node.xz"));
xz(join(webgpu, "dist/linux-x64/dawn.node"), join(out, "dawn.node.xz"));
xz(join(ortDist, "ort-wasm-simd-threaded.asyncify.wasm"), join(out, "ort-wasm-simd-threaded.asyncify.wasm.xz"));
console.log(`packed ${out}: on the GPU machine run bash scripts/gpu-check.sh (results land in $OUT)`);
