// Runs the model-kernel case table (model-cases.ts) on a GpuContext and measures each result against its CPU
// reference. Shared by the dawn.node child process and the Chromium page bundle.
import { GpuContext } from "../../kernels/gpu-context.ts";
import { embeddingSplitCalls, runEmbedding } from "../../kernels/embedding.ts";
import { runLinear, uploadWeights, type LinearWeights } from "../../kernels/matmul-nbits.ts";
import { embeddingRef, linearRef } from "../../kernels/matmul-nbits.ref.ts";
import { submitCalls, uploadBuffer, type KernelCall } from "../../kernels/dispatch.ts";
import { gatherRowsCall, geluCall, residualAddCall, rmsNormCall, swigluCall } from "../../kernels/norm-act.ts";
import { geluRef, rmsNormRef, swigluRef } from "../../kernels/norm-act.ref.ts";
import { visionAttentionCall } from "../../kernels/vision-attention.ts";
import { segmentBounds, visionAttentionRef, type VisionAttentionLayout } from "../../kernels/vision-attention.ref.ts";
import { rotaryCall, uploadRotary } from "../../kernels/rotary.ts";
import { mropeTables, rotaryRef, rotaryTables1d, visionRotaryTables } from "../../kernels/rotary.ref.ts";
import { runSampling, samplingCall, bannedMask } from "../../kernels/sampling.ts";
import { sampleRef } from "../../kernels/sampling.ref.ts";
import { linearSplitCalls, uploadWeightsSplit } from "../../kernels/matmul-nbits.ts";
import { readUint32 } from "../../kernels/dispatch.ts";
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

const launchContexts = new WeakMap<GPUDevice, Map<string, Promise<GpuContext>>>();

function launchContext(ctx: GpuContext, launch: "gpu" | "cpu"): Promise<GpuContext> {
  let byShape = launchContexts.get(ctx.device);
  if (!byShape) launchContexts.set(ctx.device, (byShape = new Map()));
  let p = byShape.get(launch);
  if (!p) byShape.set(launch, (p = GpuContext.create({ device: ctx.device, launchShapes: launch })));
  return p;
}

export async function runModelCase(ctx: GpuContext, c: ModelCase): Promise<ModelCaseResult> {
  const rnd = mulberry32(c.seed);
  switch (c.op) {
    case "linear": {
      if (c.launch !== undefined && (c.launch === "cpu") !== ctx.cpuAdapter) {
        // the same device under the other launch shapes (one context per device and shapes)
        return runModelCase(await launchContext(ctx, c.launch), { ...c, launch: undefined });
      }
      const w = makeWeights(c.w, c.n, c.k, rnd, c.seed);
      const x = uniform(rnd, c.m * c.k, c.xScale ?? 1);
      const bias = c.bias ? uniform(rnd, c.n) : undefined;
      if (c.splitBytes) {
        const sw = uploadWeightsSplit(ctx, w, "split", c.splitBytes);
        const xb = uploadBuffer(ctx, "x", x);
        const bb = bias ? uploadBuffer(ctx, "bias", bias) : null;
        const yb = ctx.storageBuffer("y", c.m * c.n * 4);
        try {
          ctx.poison(yb);
          await submitCalls(ctx, linearSplitCalls(ctx, sw, xb, c.m, yb, bb, c.kernel));
          const y = await ctx.readFloat32(yb, 0, c.m * c.n);
          // A split that did not split would not test the offsets.
          return { name: c.name, error: sw.parts.length < 2 ? Infinity : relativeError(y, linearRef(w, x, c.m, bias)), detail: `${sw.parts.length} parts` };
        } finally {
          sw.destroy();
          xb.destroy();
          bb?.destroy();
          yb.destroy();
        }
      }
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
      if (c.splitBytes !== undefined) {
        // a table in row ranges: one gather per part, every token's row written by exactly one of them
        const sw = uploadWeightsSplit(ctx, w, "split-embedding", c.splitBytes);
        const ib = uploadBuffer(ctx, "embedding-ids", ids);
        const ob = ctx.storageBuffer("embedding-out", ids.length * c.hidden * 4);
        try {
          ctx.poison(ob);
          await submitCalls(ctx, embeddingSplitCalls(ctx, sw, ib, ids.length, ob), "embedding-split");
          const out = await ctx.readFloat32(ob, 0, ids.length * c.hidden);
          return { name: c.name, error: sw.parts.length < 2 ? Infinity : relativeError(out, embeddingRef(w, ids)), detail: `${sw.parts.length} parts` };
        } finally {
          sw.destroy();
          ib.destroy();
          ob.destroy();
        }
      }
      const gw = uploadWeights(ctx, w);
      try {
        const out = await runEmbedding(ctx, gw, ids, { poison: true });
        return { name: c.name, error: relativeError(out, embeddingRef(w, ids)) };
      } finally {
        gw.destroy();
      }
    }
    case "rmsnorm": {
      const rows = c.rowScales.length;
      const x = new Float32Array(rows * c.dim);
      c.rowScales.forEach((sc, r) => x.set(uniform(rnd, c.dim, sc), r * c.dim));
      const w = Float32Array.from({ length: c.dim }, () => 0.5 + rnd());
      const out = await runSimple(ctx, [x, w], rows * c.dim, (b, o) => [rmsNormCall(ctx, b[0], b[1], o, rows, c.dim, c.eps)]);
      return { name: c.name, error: rowwiseError(out, rmsNormRef(x, rows, c.dim, w, c.eps), rows, c.dim) };
    }
    case "swiglu": {
      const g = uniform(rnd, c.rows * c.width, c.scale);
      const u = uniform(rnd, c.rows * c.width, 2);
      const ref = swigluRef(g, u);
      if (c.fused) {
        const gu = new Float32Array(c.rows * 2 * c.width);
        for (let r = 0; r < c.rows; r++) {
          gu.set(g.subarray(r * c.width, (r + 1) * c.width), r * 2 * c.width);
          gu.set(u.subarray(r * c.width, (r + 1) * c.width), r * 2 * c.width + c.width);
        }
        const l = { rows: c.rows, width: c.width, gateStride: 2 * c.width, upStride: 2 * c.width, upOffset: c.width };
        const out = await runSimple(ctx, [gu], c.rows * c.width, (b, o) => [swigluCall(ctx, b[0], b[0], o, l)]);
        return { name: c.name, error: relativeError(out, ref) };
      }
      const out = await runSimple(ctx, [g, u], c.rows * c.width, (b, o) => [swigluCall(ctx, b[0], b[1], o, { rows: c.rows, width: c.width })]);
      return { name: c.name, error: relativeError(out, ref) };
    }
    case "add": {
      const h = uniform(rnd, c.count, 3);
      const d = uniform(rnd, c.count, 1e3);
      const hb = uploadBuffer(ctx, "add-h", h);
      const db = uploadBuffer(ctx, "add-d", d);
      try {
        await submitCalls(ctx, [residualAddCall(ctx, hb, db, c.count)]);
        const out = await ctx.readFloat32(hb, 0, c.count);
        // Exact: one f32 addition, as Math.fround of the f64 sum.
        return { name: c.name, error: relativeError(out, Float64Array.from(h, (v, i) => Math.fround(v + d[i]))) };
      } finally {
        hb.destroy();
        db.destroy();
      }
    }
    case "rotary": {
      const tables = c.kind === "1d" ? rotaryTables1d(c.headDim, 1e6) : c.kind === "mrope" ? mropeTables(c.headDim, 1e6, c.section ?? [0, 0, 0]) : visionRotaryTables(c.headDim, 1e4);
      const pairs = c.pairs ?? [Array.from({ length: c.headDim / 2 }, (_, i) => i)];
      const x = uniform(rnd, c.tokens * c.heads * c.headStride, 2);
      const positions = Int32Array.from({ length: tables.streamCount * c.tokens }, (_, i) => (i % c.tokens === 0 ? c.maxPosition : Math.floor(rnd() * c.maxPosition)));
      const layout = { tokens: c.tokens, heads: c.heads, headStride: c.headStride, offset: c.offset, pairs };
      const rot = uploadRotary(ctx, tables, pairs);
      const xb = uploadBuffer(ctx, "rotary-x", x);
      const pb = uploadBuffer(ctx, "rotary-positions", positions);
      try {
        await submitCalls(ctx, [rotaryCall(ctx, rot, xb, pb, layout)]);
        const out = await ctx.readFloat32(xb, 0, x.length);
        return { name: c.name, error: relativeError(out, rotaryRef(x, layout, tables, positions)) };
      } finally {
        rot.destroy();
        xb.destroy();
        pb.destroy();
      }
    }
    case "sample": {
      const logits = uniform(rnd, c.vocab, c.scale).map((v) => v + (c.offset ?? 0));
      let top = 0;
      for (let i = 1; i < c.vocab; i++) if (logits[i] > logits[top]) top = i;
      const tieIds = Array.from({ length: c.ties ?? 0 }, () => Math.floor(rnd() * c.vocab));
      for (const i of tieIds) logits[i] = logits[top];
      const banned = [top, ...Array.from({ length: Math.max(0, (c.banned ?? 0) - 1) }, () => Math.floor(rnd() * c.vocab))].slice(0, c.banned ?? 0);
      const mask = banned.length ? bannedMask(c.vocab, banned) : null;
      let mismatches = 0;
      let skipped = 0;
      const ids: string[] = [];
      for (let step = 0; step < c.draws; step++) {
        const p = { temperature: c.temperature, topK: c.topK, topP: c.topP, seed: c.seed * 7919, step };
        const got = await runSampling(ctx, logits, p, banned);
        const ref = sampleRef(logits, mask, p);
        ids.push(`${got}/${ref.id}`);
        if (ref.margin <= 1e-5) skipped++;
        else if (got !== ref.id) mismatches++;
      }
      return { name: c.name, error: mismatches + (skipped === c.draws ? 1 : 0), detail: `gpu/ref ids ${ids.join(" ")}; ${skipped} near a boundary` };
    }
    case "vision_attention": {
      const rows = c.cu[c.cu.length - 1];
      const w = c.heads * c.headDim;
      const bounds = segmentBounds(c.cu, rows);
      // Separate buffers get padded rows (stride w + 3, offset 2) so a kernel that ignores stride/offset fails.
      const l: VisionAttentionLayout = c.fused
        ? { rows, heads: c.heads, headDim: c.headDim, qStride: 3 * w, qOffset: 0, kStride: 3 * w, kOffset: w, vStride: 3 * w, vOffset: 2 * w }
        : { rows, heads: c.heads, headDim: c.headDim, qStride: w + 3, qOffset: 2, kStride: w + 3, kOffset: 2, vStride: w + 3, vOffset: 2 };
      if (c.fused) {
        const qkv = uniform(rnd, rows * 3 * w, c.scale);
        const out = await runSimple(ctx, [qkv, new Float32Array(bounds.buffer)], rows * w, (b, o) => [
          visionAttentionCall(ctx, { q: b[0], k: b[0], v: b[0], bounds: b[1], out: o }, l),
        ]);
        return { name: c.name, error: relativeError(out, visionAttentionRef(qkv, qkv, qkv, l, c.cu)) };
      }
      const q = uniform(rnd, rows * (w + 3), c.scale);
      const k = uniform(rnd, rows * (w + 3), 1);
      const v = uniform(rnd, rows * (w + 3), 2);
      const out = await runSimple(ctx, [q, k, v, new Float32Array(bounds.buffer)], rows * w, (b, o) => [visionAttentionCall(ctx, { q: b[0], k: b[1], v: b[2], bounds: b[3], out: o }, l)]);
      return { name: c.name, error: relativeError(out, visionAttentionRef(q, k, v, l, c.cu)) };
    }
    case "gelu": {
      const x = uniform(rnd, c.count, c.scale);
      const xb = uploadBuffer(ctx, "gelu-x", x);
      try {
        await submitCalls(ctx, [geluCall(ctx, xb, c.count)]);
        const out = await ctx.readFloat32(xb, 0, c.count);
        return { name: c.name, error: relativeError(out, geluRef(x)) };
      } finally {
        xb.destroy();
      }
    }
    case "gather_rows": {
      const src = uniform(rnd, c.srcRows * c.width, 3);
      const idx = new Float32Array(Uint32Array.from(c.index).buffer);
      const ref = new Float64Array(c.index.length * c.width);
      c.index.forEach((s, r) => {
        if (s < c.srcRows) ref.set(src.subarray(s * c.width, (s + 1) * c.width), r * c.width);
      });
      const out = await runSimple(ctx, [src, idx], c.index.length * c.width, (b, o) => [gatherRowsCall(ctx, b[0], b[1], o, c.index.length, c.width, c.srcRows)]);
      return { name: c.name, error: relativeError(out, ref) };
    }
    case "lmhead": {
      const w = quantizeNBits(uniform(rnd, c.vocab * c.hidden, 0.5), c.vocab, c.hidden, 4, 32, true, c.seed);
      const h = uniform(rnd, c.hidden, 2);
      const gw = uploadWeightsSplit(ctx, w, "lm-head", c.splitBytes);
      const hb = uploadBuffer(ctx, "lm-hidden", h);
      const lb = ctx.storageBuffer("lm-logits", c.vocab * 4);
      const ob = ctx.storageBuffer("lm-id", 4);
      const refLogits = Float32Array.from(linearRef(w, h, 1));
      let mismatches = 0;
      let skipped = 0;
      const ids: string[] = [];
      try {
        for (let step = 0; step < c.draws; step++) {
          const p = { temperature: c.temperature, topK: c.topK, topP: c.topP, seed: c.seed, step };
          // One submission: GEMV logits, then the sampler; only the 4-byte id comes back.
          await submitCalls(ctx, [...linearSplitCalls(ctx, gw, hb, 1, lb), samplingCall(ctx, { logits: lb, banned: null, out: ob }, c.vocab, p)], "lm-head");
          const got = (await readUint32(ctx, ob, 0, 1))[0];
          const ref = sampleRef(refLogits, null, p);
          ids.push(`${got}/${ref.id}`);
          // Logits differ from the f64 reference by f32 rounding (~1e-6 relative): a wider boundary margin.
          if (ref.margin <= 1e-4) skipped++;
          else if (got !== ref.id) mismatches++;
        }
      } finally {
        gw.destroy();
        hb.destroy();
        lb.destroy();
        ob.destroy();
      }
      return { name: c.name, error: mismatches + (skipped === c.draws ? 1 : 0) + (c.splitBytes && gw.parts.length < 2 ? 1 : 0), detail: `gpu/ref ids ${ids.join(" ")}; ${skipped} near a boundary; ${gw.parts.length} parts` };
    }
  }
}

/** Uploads inputs (u32 tables travel as their bits in a Float32Array view), runs the calls built on them into a poisoned output of `count` f32, reads it back. */
async function runSimple(ctx: GpuContext, inputs: Float32Array[], count: number, calls: (b: GPUBuffer[], out: GPUBuffer) => KernelCall[]): Promise<Float32Array> {
  const bufs = inputs.map((a, i) => uploadBuffer(ctx, `in${i}`, a));
  const out = ctx.storageBuffer("out", count * 4);
  try {
    ctx.poison(out);
    await submitCalls(ctx, calls(bufs, out));
    return await ctx.readFloat32(out, 0, count);
  } finally {
    bufs.forEach((b) => b.destroy());
    out.destroy();
  }
}

/** Worst per-row relative error (rows of very different magnitude are each held to the tolerance). */
function rowwiseError(actual: Float32Array, ref: Float64Array, rows: number, dim: number): number {
  let worst = 0;
  for (let r = 0; r < rows; r++) worst = Math.max(worst, relativeError(actual.subarray(r * dim, (r + 1) * dim), ref.subarray(r * dim, (r + 1) * dim)));
  return worst;
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
