// Child process for the Node WebGPU test: dawn.node needs VK_ICD_FILENAMES (and libvulkan on LD_LIBRARY_PATH) set
// before the process starts, so the vitest file spawns this script. Prints one JSON line: adapter info + case results.
import { create, globals } from "webgpu";
import { createGpuBackend } from "../../kernels/backend.ts";
import { KERNEL_CASES, SESSION_CASE } from "./cases.ts";
import { runCases, runConcurrentSteps, runSessionSteps } from "./harness.ts";

Object.assign(globalThis, globals);
const gpu = create([]) as unknown as GPU;
let code = 0;
try {
  // MLA_SHADER_F16=0 forces the path without `shader-f16` on adapters that have it (a real GPU runs both).
  const backend = await createGpuBackend({ gpu, shaderF16: process.env.MLA_SHADER_F16 !== "0" });
  const only = process.argv[2];
  const cases = only ? KERNEL_CASES.filter((c) => c.name.includes(only)) : KERNEL_CASES;
  const results = await runCases(backend, cases);
  const pipelinesBeforeSession = backend.ctx.pipelineCount;
  // The session reuses a layout the cases compiled already: no new pipeline may appear.
  const session = await runSessionSteps(backend, SESSION_CASE);
  const concurrent = await runConcurrentSteps(backend, SESSION_CASE);
  const device = backend.ctx.device;
  console.log(
    JSON.stringify({
      adapter: device.adapterInfo ? `${device.adapterInfo.vendor} ${device.adapterInfo.architecture} ${device.adapterInfo.description}` : "",
      f16: backend.ctx.features.f16,
      pipelines: backend.ctx.pipelineCount,
      pipelinesBeforeSession,
      results,
      session,
      concurrent,
    }),
  );
} catch (e) {
  console.log(JSON.stringify({ fatal: `${(e as Error).name}: ${(e as Error).message}` }));
  code = 1;
}
// dawn.node keeps the process alive otherwise (platform.md §9.2).
process.exit(code);
