// Child process of the model-kernel Node WebGPU test (dawn.node reads its Vulkan environment at start). Prints one
// JSON line: adapter + one result per case of MODEL_CASES (optionally filtered by a name substring).
import { create, globals } from "webgpu";
import { GpuContext } from "../../kernels/gpu-context.ts";
import { MODEL_CASES } from "./model-cases.ts";
import { runModelCases } from "./model-harness.ts";

Object.assign(globalThis, globals);
const gpu = create([]) as unknown as GPU;
let code = 0;
try {
  const ctx = await GpuContext.create({ gpu, shaderF16: process.env.MLA_SHADER_F16 !== "0" });
  const only = process.argv[2];
  const results = await runModelCases(ctx, only ? MODEL_CASES.filter((c) => c.name.includes(only)) : MODEL_CASES);
  const info = ctx.device.adapterInfo;
  console.log(JSON.stringify({ adapter: info ? `${info.vendor} ${info.architecture} ${info.description}` : "", f16: ctx.features.f16, pipelines: ctx.pipelineCount, results }));
} catch (e) {
  console.log(JSON.stringify({ fatal: `${(e as Error).name}: ${(e as Error).message}` }));
  code = 1;
}
process.exit(code);
