// Node side of `npm run bench:linear -- --runtime node`: the GEMV benchmark core on dawn.node (spawned by
// linear.bench.ts with the Vulkan driver chosen in the environment). Prints ONE JSON object on stdout.
import { create, globals } from "webgpu";
import { GpuContext } from "../../kernels/gpu-context.ts";
import { runLinearBench, type LinearBenchConfig } from "../kernels/linear-bench.ts";

Object.assign(globalThis, globals);
const gpu = create([]) as unknown as GPU;
let code = 0;
try {
  const cfg = JSON.parse(process.argv[2] ?? "{}") as LinearBenchConfig;
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("requestAdapter() returned null");
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has("shader-f16") ? ["shader-f16"] : [],
    requiredLimits: { maxBufferSize: adapter.limits.maxBufferSize, maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize },
  });
  const r = await runLinearBench(await GpuContext.create({ device }), cfg, (s) => console.error(s));
  console.log(JSON.stringify(r));
} catch (e) {
  console.log(JSON.stringify({ fatal: `${(e as Error).name}: ${(e as Error).message}` }));
  code = 1;
}
process.exit(code);
