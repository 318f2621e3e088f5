// Browser side of `npm run bench:kernels`: loads onnxruntime-web from the test server's /ort/ and exposes the shared
// benchmark core (kernel-bench.ts) to the Playwright driver.
import { runKernelBench, type BenchConfig, type KernelBenchResult, type OrtModule } from "./kernel-bench.ts";

async function runInPage(cfg: BenchConfig): Promise<KernelBenchResult> {
  const ort = (await import(/* @vite-ignore */ "/ort/ort.webgpu.min.mjs" as string)) as OrtModule;
  ort.env.wasm.wasmPaths = "/ort/";
  return runKernelBench(ort, cfg);
}

(globalThis as unknown as { runKernelBench: typeof runInPage }).runKernelBench = runInPage;
