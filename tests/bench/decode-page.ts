// Browser side of `npm run bench:decode`: loads onnxruntime-web from the test server's /ort/ and exposes the benchmark
// core (decode-bench.ts) to the Playwright driver.
import type { OrtModule } from "../kernels/kernel-bench.ts";
import { runDecodeBench, type DecodeBenchConfig, type DecodeBenchResult } from "./decode-bench.ts";

async function runInPage(cfg: DecodeBenchConfig): Promise<DecodeBenchResult> {
  const ort = (await import(/* @vite-ignore */ "/ort/ort.webgpu.min.mjs" as string)) as OrtModule;
  ort.env.wasm.wasmPaths = "/ort/";
  return runDecodeBench(ort, cfg, (s) => console.log(`[decode-bench] ${s}`));
}

(globalThis as unknown as { runDecodeBench: typeof runInPage }).runDecodeBench = runInPage;
