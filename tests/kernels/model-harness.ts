// Runs the model-kernel case table (model-cases.ts) on a GpuContext and measures each result against its CPU
// reference. Shared by the dawn.node child process and the Chromium page bundle.
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { runEmbedding } from "../../kernels/embedding.ts";
import { runLinear, uploadWeights, type LinearWeights } from "../../kernels/matmul-nbits.ts";
import { embeddingRef, linearRef } from "../../kernels/matmul-nbits.ref.ts";
import { mulberry32 } from "../helpers/mulberry32.ts";
import { relativeError } from "./case-data.ts";
import type { ModelCase, WeightCase } from "./model-cases.ts";
import { quantizeNBits, toF16 } from "./nbits-quantizer.ts";

export interface ModelCaseResult {
  readonly name: string;
  /** Relative error (max |Δ| / max |ref|) against the CPU reference; for sampling, 0 when the ids agree, else 1. */
  readonly error: number;
  readonly detail?: string;
}

function uniform(rnd: () => number, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => (rnd() * 2 - 1) * scale);
}

function makeWeights(w: WeightCase, n: number, k: number, rnd: () => number, seed: number): LinearWeights {
  const dense = uniform(rnd, n * k, 0.5);
  if (w.kind === "f32") return { kind: "f32", n, k, data: dense };
  if (w.kind === "f16") return { kind: "f16", n, k, data: toF16(dense) };
  return quantizeNBits(dense, n, k, w.bits, w.block, w.zeroPoints, seed);
}

export async function runModelCase(ctx: GpuContext, c: ModelCase): Promise<ModelCaseResult> {
  const rnd = mulberry32(c.seed);
  switch (c.op) {
    case "linear": {
      const w = makeWeights(c.w, c.n, c.k, rnd, c.seed);
      const x = uniform(rnd, c.m * c.k, c.xScale ?? 1);
      const bias = c.bias ? uniform(rnd, c.n) : undefined;
      const gw = uploadWeights(ctx, w);
      try {
        const y = await runLinear(ctx, gw, x, c.m, { bias, kernel: c.kernel, poison: true });
        return { name: c.name, error: relativeError(y, linearRef(w, x, c.m, bias)) };
      } finally {
        gw.destroy();
      }
    }
    case "embedding": {
      const w = makeWeights(c.w, c.vocab, c.hidden, rnd, c.seed);
      const ids = Uint32Array.from({ length: c.tokens }, (_, i) => (i === 0 ? c.vocab - 1 : Math.floor(rnd() * c.vocab)));
      const gw = uploadWeights(ctx, w);
      try {
        const out = await runEmbedding(ctx, gw, ids, { poison: true });
        return { name: c.name, error: relativeError(out, embeddingRef(w, ids)) };
      } finally {
        gw.destroy();
      }
    }
  }
}

export async function runModelCases(ctx: GpuContext, cases: readonly ModelCase[]): Promise<Array<ModelCaseResult | { name: string; fault: string }>> {
  const out: Array<ModelCaseResult | { name: string; fault: string }> = [];
  for (const c of cases) {
    try {
      out.push(await runModelCase(ctx, c));
    } catch (e) {
      out.push({ name: c.name, fault: `${(e as Error).name}: ${(e as Error).message}` });
    }
  }
  return out;
}
