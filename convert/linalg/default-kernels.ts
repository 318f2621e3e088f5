// Picks the kernels the linalg routines use when the caller passes none: wasm SIMD when built, else TypeScript.
import type { LinalgKernels } from "./kernels.ts";
import { typescriptKernels } from "./kernels-ts.ts";
import { loadWasmKernels } from "./kernels-wasm.ts";

/** The fastest available kernels; `.name` tells which (benchmarks report it). */
export function defaultKernels(): LinalgKernels {
  return loadWasmKernels() ?? typescriptKernels;
}
