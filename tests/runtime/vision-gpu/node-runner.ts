// Child process of qwen25vl-vision-gpu.test.ts (dawn.node reads its Vulkan environment at start): reads the inputs blob
// at argv[2], runs the GPU tower in every format and writes one JSON object to argv[3] (stdout to a pipe is
// asynchronous and process.exit would cut a long line).
import { readFileSync, writeFileSync } from "node:fs";
import { create, globals } from "webgpu";
import { GpuContext } from "../../../kernels/gpu-context.ts";
import { decodeVisionInputs, runVisionGpu } from "./harness.ts";

Object.assign(globalThis, globals);
// Held for the whole run: a collected GPU object takes dawn.node's instance down with it (native abort).
const gpu = create([]) as unknown as GPU;
let code = 0;
try {
  const ctx = await GpuContext.create({ gpu });
  const inp = decodeVisionInputs(new Uint8Array(readFileSync(process.argv[2])));
  const results = await runVisionGpu(ctx, inp, ["f32", "f16", "int8"]);
  const info = ctx.device.adapterInfo;
  writeFileSync(process.argv[3], JSON.stringify({ adapter: info ? `${info.vendor} ${info.architecture} ${info.description}` : "", results }));
} catch (e) {
  writeFileSync(process.argv[3], JSON.stringify({ fatal: `${(e as Error).name}: ${(e as Error).message}\n${(e as Error).stack ?? ""}` }));
  code = 1;
}
process.exit(code);
