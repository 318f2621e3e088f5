// The distinct cache layouts the kernel cases use, and the kernel programs each layout compiles: shared by the
// shader-f16 source check and the null-backend compile runner, which must cover the same variants.
import { cacheLayout, type CacheLayout } from "../../kernels/geometry.ts";
import { createMlaAttentionCombineProgram } from "../../kernels/mla-attention-combine.ts";
import { createMlaAttentionSplitProgram } from "../../kernels/mla-attention-split.ts";
import { createMlaDequantizeProgram } from "../../kernels/mla-dequantize.ts";
import type { KernelProgram } from "../../kernels/program.ts";
import { KERNEL_CASES, SESSION_CASE } from "./cases.ts";

/** One layout per distinct (geometry, encoding) of KERNEL_CASES and SESSION_CASE. */
export function caseLayouts(): CacheLayout[] {
  const seen = new Map<string, CacheLayout>();
  for (const c of [...KERNEL_CASES, SESSION_CASE]) seen.set(JSON.stringify([c.geometry, c.encoding]), cacheLayout(c.geometry, c.encoding));
  return [...seen.values()];
}

/** Pass 1, pass 2 and the dequantize kernel of a layout. */
export function layoutPrograms(layout: CacheLayout): KernelProgram[] {
  return [createMlaAttentionSplitProgram(layout), createMlaAttentionCombineProgram(layout), createMlaDequantizeProgram(layout)];
}
