// Core of `npm run bench:linear`: decode GEMV (M = 1) time per call over int4 / int8 (MatMulNBits, block 32) and f16 /
// f32 weights of the same shapes, same device, same run — the ratios are what weight quantization buys per token.
// Shared by the Chromium page and the dawn.node runner. Each timing records `batch` GEMVs into one submission (the GPU's
// own time, no CPU round trip), so GB/s = weight bytes read per GEMV / time.
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { recordCalls, uploadBuffer } from "../../kernels/dispatch.ts";
import { linearCall, uploadWeights, type LinearWeights } from "../../kernels/matmul-nbits.ts";
import { dequantizeWeightsRef } from "../../kernels/matmul-nbits.ref.ts";
import { relativeError } from "./case-data.ts";
import { quantizeNBits, toF16 } from "./nbits-quantizer.ts";
import { mulberry32 } from "../helpers/mulberry32.ts";

export type LinearBenchFormat = "int4" | "int8" | "f16" | "f32";

export interface LinearBenchConfig {
  /** [N, K] pairs (out, in). */
  readonly shapes: Array<[number, number]>;
  readonly formats: LinearBenchFormat[];
  readonly minMs: number;
  readonly maxIters: number;
  readonly batch: number;
  /** Rows of x (default 1: the decode GEMV; above 4 the prefill GEMM runs, linearCall's "auto"). */
  readonly m?: number;
}

export interface LinearBenchRow {
  readonly n: number;
  readonly k: number;
  readonly format: LinearBenchFormat;
  readonly weightBytes: number;
  /** ms per GEMV, median / min over the timed batches. */
  readonly ms: number;
  readonly msMin: number;
  readonly achievedGBs: number;
  /** First 8 output rows vs the f64 reference. */
  readonly maxRelError: number;
}

export interface LinearBenchResult {
  readonly adapter: string;
  readonly batch: number;
  readonly rows: LinearBenchRow[];
  /** Per shape "NxK": time of each format ÷ time of int4 (> 1: int4 is faster). */
  readonly ratios: Record<string, Partial<Record<LinearBenchFormat, number>>>;
}

function makeWeights(format: LinearBenchFormat, dense: Float32Array, n: number, k: number): LinearWeights {
  if (format === "f32") return { kind: "f32", n, k, data: dense };
  if (format === "f16") return { kind: "f16", n, k, data: toF16(dense) };
  return quantizeNBits(dense, n, k, format === "int4" ? 4 : 8, 32, false);
}

/** The first `rows` rows of the weights (for a cheap reference check). */
function headRows(w: LinearWeights, rows: number): LinearWeights {
  if (w.kind === "f32") return { ...w, n: rows, data: w.data.subarray(0, rows * w.k) };
  if (w.kind === "f16") return { ...w, n: rows, data: w.data.subarray(0, rows * w.k) };
  const kb = Math.ceil(w.k / w.block);
  return { ...w, n: rows, data: w.data.subarray(0, rows * kb * ((w.block * w.bits) / 8)), scales: w.scales.subarray(0, rows * kb) };
}

export async function runLinearBench(ctx: GpuContext, cfg: LinearBenchConfig, log: (s: string) => void = () => {}): Promise<LinearBenchResult> {
  const d = ctx.device;
  const rows: LinearBenchRow[] = [];
  const ratios: LinearBenchResult["ratios"] = {};
  for (const [n, k] of cfg.shapes) {
    const rnd = mulberry32(n * 31 + k);
    const dense = Float32Array.from({ length: n * k }, () => (rnd() * 2 - 1) * 0.05);
    const m = cfg.m ?? 1;
    const x = Float32Array.from({ length: m * k }, () => rnd() * 2 - 1);
    const xb = uploadBuffer(ctx, "bench-x", x);
    const yb = ctx.storageBuffer("bench-y", m * n * 4);
    const times: Partial<Record<LinearBenchFormat, number>> = {};
    try {
      for (const format of cfg.formats) {
        const w = makeWeights(format, dense, n, k);
        const gw = uploadWeights(ctx, w, `bench-${format}`);
        try {
          const call = linearCall(ctx, gw, xb, m, yb, null, m === 1 ? "gemv" : "auto");
          const runBatch = async (): Promise<void> => {
            const enc = d.createCommandEncoder();
            const params = await recordCalls(ctx, enc, Array.from({ length: cfg.batch }, () => call));
            d.queue.submit([enc.finish()]);
            await d.queue.onSubmittedWorkDone();
            params.forEach((p) => p.destroy());
          };
          await runBatch();
          const y = await ctx.readFloat32(yb, 0, 8);
          const head = headRows(w, 8);
          const ref = dequantizeWeightsRef(head);
          const yRef = Float64Array.from({ length: 8 }, (_, r) => {
            let s = 0;
            for (let j = 0; j < k; j++) s += ref[r * k + j] * x[j];
            return s;
          });
          const samples: number[] = [];
          const start = performance.now();
          while (samples.length < 3 || (performance.now() - start < cfg.minMs && samples.length < cfg.maxIters)) {
            const t0 = performance.now();
            await runBatch();
            samples.push((performance.now() - t0) / cfg.batch);
          }
          samples.sort((a, b) => a - b);
          const ms = samples[Math.floor(samples.length / 2)];
          const weightBytes = w.kind === "nbits" ? w.data.byteLength + w.scales.byteLength : w.data.byteLength;
          rows.push({ n, k, format, weightBytes, ms, msMin: samples[0], achievedGBs: weightBytes / (ms * 1e6), maxRelError: relativeError(y, yRef) });
          times[format] = ms;
          log(`${n}x${k} ${format}: ${ms.toFixed(3)} ms/GEMV, ${(weightBytes / (ms * 1e6)).toFixed(2)} GB/s`);
        } finally {
          gw.destroy();
        }
      }
    } finally {
      xb.destroy();
      yb.destroy();
    }
    const base = times.int4;
    if (base) ratios[`${n}x${k}`] = Object.fromEntries(Object.entries(times).map(([f, t]) => [f, t / base]));
  }
  const info = d.adapterInfo;
  return { adapter: info ? `${info.vendor} ${info.architecture} ${info.description}` : "", batch: cfg.batch, rows, ratios };
}
