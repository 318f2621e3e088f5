// f32 projections for the calibration forward on a WebGPU device (dawn.node in the CLI): the same contract as
// linear-f32-wasm.ts — a layer's weights are uploaded once (`upload`), used for every calibration sequence and freed by
// `reset`; `linear` takes and returns f64 activations and computes in f32 — on the kernels' tiled GEMM
// (kernels/matmul-nbits.ts, f32 weights). A weight past the device's binding limit is split along its rows, and
// activations go through in row blocks so that no buffer passes 64 MiB.
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { uploadBuffer, submitCalls } from "../../kernels/dispatch.ts";
import { linearSplitCalls, uploadWeightsSplit, type SplitGpuWeights } from "../../kernels/matmul-nbits.ts";

/** Bytes per activation buffer at most (x rows, y rows). */
const BLOCK_BYTES = 64 * 1024 * 1024;

export class GpuLinearF32 {
  readonly #ctx: GpuContext;
  readonly #weights: SplitGpuWeights[] = [];

  constructor(ctx: GpuContext) {
    this.#ctx = ctx;
  }

  /** A weight [outDim × inDim] on the GPU until `reset`. */
  upload(w: Float32Array, outDim: number, inDim: number): SplitGpuWeights {
    const g = uploadWeightsSplit(this.#ctx, { kind: "f32", n: outDim, k: inDim, data: w }, "calib-weight");
    this.#weights.push(g);
    return g;
  }

  /** out[rows × w.n] = x[rows × inDim] · wᵀ (+ bias), in f32 on the GPU. */
  async linear(x: Float64Array, rows: number, inDim: number, w: SplitGpuWeights, bias: Float32Array | null, out: Float64Array): Promise<void> {
    const ctx = this.#ctx;
    const n = w.n;
    const block = Math.max(1, Math.floor(BLOCK_BYTES / (4 * Math.max(inDim, n))));
    const biasBuf = bias ? uploadBuffer(ctx, "calib-bias", bias) : null;
    try {
      for (let r0 = 0; r0 < rows; r0 += block) {
        const m = Math.min(block, rows - r0);
        const xb = uploadBuffer(ctx, "calib-x", Float32Array.from(x.subarray(r0 * inDim, (r0 + m) * inDim)));
        const yb = ctx.storageBuffer("calib-y", m * n * 4);
        try {
          await submitCalls(ctx, linearSplitCalls(ctx, w, xb, m, yb, biasBuf), "calib-linear");
          const y = await ctx.readFloat32(yb, 0, m * n);
          for (let i = 0; i < m * n; i++) out[r0 * n + i] = y[i];
        } finally {
          xb.destroy();
          yb.destroy();
        }
      }
      ctx.throwIfFailed();
    } finally {
      biasBuf?.destroy();
    }
  }

  /** Frees the uploaded weights (the next layer's come next). */
  reset(): void {
    for (const w of this.#weights.splice(0)) w.destroy();
  }

  async close(): Promise<void> {
    this.reset();
  }
}
