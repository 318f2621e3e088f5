// Browser bundle of the Chromium vision-tower test: fetches the inputs blob the test serves and runs the GPU tower.
import { GpuContext } from "../../../kernels/gpu-context.ts";
import { decodeVisionInputs, runVisionGpu } from "./harness.ts";

async function runVisionGpuTower(url: string): Promise<unknown> {
  const ctx = await GpuContext.create();
  const inp = decodeVisionInputs(new Uint8Array(await (await fetch(url)).arrayBuffer()));
  const results = await runVisionGpu(ctx, inp, ["f32", "f16", "int8"]);
  const info = ctx.device.adapterInfo;
  return { adapter: info ? `${info.vendor} ${info.architecture}` : "", results };
}

(globalThis as unknown as { runVisionGpuTower: typeof runVisionGpuTower }).runVisionGpuTower = runVisionGpuTower;
