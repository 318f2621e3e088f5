// Browser bundle for the Chromium kernel test: exposes the case runner on globalThis for playwright to call.
import { createGpuBackend } from "../../kernels/backend.ts";
import { KERNEL_CASES, SESSION_CASE } from "./cases.ts";
import { runCases, runConcurrentSteps, runSessionSteps } from "./harness.ts";

async function runKernelCases(filter?: string): Promise<unknown> {
  const backend = await createGpuBackend();
  const cases = filter ? KERNEL_CASES.filter((c) => c.name.includes(filter)) : KERNEL_CASES;
  const results = await runCases(backend, cases);
  const session = await runSessionSteps(backend, SESSION_CASE);
  const concurrent = await runConcurrentSteps(backend, SESSION_CASE);
  const info = backend.ctx.device.adapterInfo;
  return { adapter: info ? `${info.vendor} ${info.architecture}` : "", f16: backend.ctx.features.f16, results, session, concurrent };
}

(globalThis as unknown as { runKernelCases: typeof runKernelCases }).runKernelCases = runKernelCases;
