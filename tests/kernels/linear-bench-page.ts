// Browser side of `npm run bench:linear`: exposes the GEMV benchmark core (linear-bench.ts) to the Playwright driver.
import { GpuContext } from "../../kernels/gpu-context.ts";
import { runLinearBench, type LinearBenchConfig, type LinearBenchResult } from "./linear-bench.ts";

async function runInPage(cfg: LinearBenchConfig): Promise<LinearBenchResult> {
  return runLinearBench(await GpuContext.create(), cfg, (s) => console.log(s));
}

(globalThis as unknown as { runLinearBench: typeof runInPage }).runLinearBench = runInPage;
