// Browser bundle for the Chromium model-kernel test: exposes the case runner on globalThis for playwright to call.
import { GpuContext } from "../../kernels/gpu-context.ts";
import { MODEL_CASES } from "./model-cases.ts";
import { runModelCases } from "./model-harness.ts";

async function runModelKernelCases(filter?: string): Promise<unknown> {
  const ctx = await GpuContext.create();
  const results = await runModelCases(ctx, filter ? MODEL_CASES.filter((c) => c.name.includes(filter)) : MODEL_CASES);
  const info = ctx.device.adapterInfo;
  return { adapter: info ? `${info.vendor} ${info.architecture}` : "", f16: ctx.features.f16, results };
}

(globalThis as unknown as { runModelKernelCases: typeof runModelKernelCases }).runModelKernelCases = runModelKernelCases;
