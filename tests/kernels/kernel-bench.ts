// Core of `npm run bench:kernels`, shared by the Chromium page and the Node (dawn.node) runner: times one decode step of
// one layer of absorbed MLA attention on the packed int4/int8 cache against onnxruntime-web's WebGPU
// com.microsoft.GroupQueryAttention and a same-harness WGSL GQA kernel on the equivalent uncompressed f32 GQA cache —
// same GPUDevice (ORT's), same run.
import { GpuContext } from "../../kernels/gpu-context.ts";
import { GpuBackend } from "../../kernels/backend.ts";
import { bytesPerSealedToken, cacheLayout, PAGE_TOKENS } from "../../kernels/geometry.ts";
import type { LatentCacheGpu } from "../../kernels/latent-cache-gpu.ts";
import { mlaAttentionRef } from "../../kernels/mla-attention.ref.ts";
import { dequantizeBlockRef } from "../../kernels/mla-dequantize.ref.ts";
import { packQueries, type MlaQueries } from "../../kernels/types.ts";
import { qwenGeometry } from "./cases.ts";
import { normalSource, relativeError } from "./case-data.ts";
import { GqaBaseline } from "./gqa-baseline.ts";
import { gqaDecodeModel } from "./onnx-gqa.ts";
import { quantizeBlock } from "./pack.ts";

/** The slice of the onnxruntime-web API the benchmark uses. */
interface OrtTensor {
  readonly data: unknown;
  getData(): Promise<ArrayLike<number>>;
  dispose(): void;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
}
export interface OrtModule {
  env: { wasm: { wasmPaths: string; numThreads: number }; webgpu: { device: Promise<GPUDevice> | GPUDevice }; logLevel: string };
  InferenceSession: { create(model: Uint8Array, opts: Record<string, unknown>): Promise<OrtSession> };
  Tensor: {
    new (type: "float32" | "int32", data: Float32Array | Int32Array, dims: number[]): OrtTensor;
    fromGpuBuffer(buffer: GPUBuffer, opts: { dataType: "float32"; dims: number[] }): OrtTensor;
  };
}

export interface BenchConfig {
  readonly contexts: number[];
  readonly minMs: number;
  readonly maxIters: number;
  /** Steps recorded into one command buffer for the GPU-throughput timing (no CPU round trip between steps). */
  readonly batch: number;
}

export interface Timing {
  median: number;
  min: number;
  iters: number;
}

export interface KernelBenchRow {
  context: number;
  sealed: number;
  tail: number;
  plan: { pages: number; splitCount: number; pagesPerSplit: number };
  /** One step = encode + submit + onSubmittedWorkDone: what a decode loop that reads each token back pays. */
  mla: Timing;
  /** Per step, `batch` steps in one submit: the GPU's own time, which bandwidth figures use. */
  mlaBatched: Timing;
  mlaMaxRelError: number | null;
  gqa: Timing | null;
  gqaMaxRelError: number | null;
  gqaError: string | null;
  gqaWgsl: Timing;
  gqaWgslBatched: Timing;
  gqaWgslMaxRelError: number | null;
  gqaWgslSplits: number;
}

export interface KernelBenchResult {
  adapter: string;
  f16: boolean;
  batch: number;
  bytesPerTokenMla: number;
  tailBytesPerToken: number;
  partialBytesPerSplit: number;
  results: KernelBenchRow[];
}

async function time(step: () => Promise<void>, cfg: BenchConfig): Promise<Timing> {
  await step();
  await step();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < 3 || (performance.now() - start < cfg.minMs && samples.length < cfg.maxIters)) {
    const t0 = performance.now();
    await step();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return { median: samples[Math.floor(samples.length / 2)], min: samples[0], iters: samples.length };
}

/** Times `batch` steps recorded into one command encoder and submitted once; reports time per step. */
async function timeBatched(device: GPUDevice, record: (enc: GPUCommandEncoder) => Promise<void>, cfg: BenchConfig): Promise<Timing> {
  const t = await time(async () => {
    const enc = device.createCommandEncoder();
    for (let i = 0; i < cfg.batch; i++) await record(enc);
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  }, cfg);
  return { median: t.median / cfg.batch, min: t.min / cfg.batch, iters: t.iters * cfg.batch };
}

const GEOMETRY = qwenGeometry(256); // Qwen2.5-VL-7B at d_kv = 64
const ENCODING = { latentBits: 4, latentGroup: 64, rope: "int8" } as const;

export async function runKernelBench(ort: OrtModule, cfg: BenchConfig): Promise<KernelBenchResult> {
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = "error";
  const g = GEOMETRY;
  const session = await ort.InferenceSession.create(gqaDecodeModel({ heads: g.heads, kvHeads: g.kvHeads, headDim: g.headDim }), {
    executionProviders: ["webgpu"],
    preferredOutputLocation: "gpu-buffer",
  });
  const device = await ort.env.webgpu.device;
  const backend = new GpuBackend(await GpuContext.create({ device }));
  const layout = cacheLayout(g, ENCODING);
  const runner = backend.runner(layout);
  await runner.prepare();
  const rnd = normalSource(2024);

  // One real 64-token chunk, quantized per docs/codec.md, written at every chunk position.
  const latentF32 = Float32Array.from({ length: PAGE_TOKENS * g.latentWidth }, () => rnd());
  const ropeF32 = Float32Array.from({ length: PAGE_TOKENS * layout.ropeWidth }, () => 2 * rnd());
  const latentBlock = quantizeBlock(latentF32, PAGE_TOKENS, g.latentWidth, 4, 64, "token");
  const ropeBlock = quantizeBlock(ropeF32, PAGE_TOKENS, layout.ropeWidth, 8, g.ropeDims, "token");
  const qs = (2 * Math.sqrt(g.headDim)) / Math.sqrt(g.latentWidth);
  const queries: MlaQueries = {
    queryCount: 1,
    qRope: Float32Array.from({ length: g.heads * g.ropeDims }, () => rnd()),
    qLatent: [0, 1].map(() => Float32Array.from({ length: g.heads * g.latentWidth }, () => qs * rnd())),
    keyBias: [0, 1].map(() => Float32Array.from({ length: g.heads }, () => rnd())),
  };

  const results: KernelBenchRow[] = [];
  for (const T of cfg.contexts) {
    // --- MLA: sealed chunks + an f32 tail of 1..64 tokens (the residual window), image span in the middle.
    const sealed = Math.floor((T - 1) / PAGE_TOKENS) * PAGE_TOKENS;
    const tail = T - sealed;
    const cache = backend.createCache(layout, { layers: 1, initialCapacity: T }) as LatentCacheGpu;
    for (let t = 0; t < sealed; t += PAGE_TOKENS) cache.writeSealed(0, t, latentBlock, ropeBlock);
    cache.writeTail(0, latentF32.subarray(0, tail * g.latentWidth), ropeF32.subarray(0, tail * layout.ropeWidth), tail);
    const modality = Uint8Array.from({ length: T }, (_, j) => (j > T * 0.1 && j < T * 0.6 ? 1 : 0));
    cache.writeModality(0, modality);
    cache.commit({ sealedLength: sealed, length: T });
    runner.writeQueries(packQueries(g, queries));
    let mlaCheck: number | null = null;
    if (T <= 1024) {
      const out = await runner.run(cache, 0, queries);
      const dLat = dequantizeBlockRef(latentBlock);
      const dRope = dequantizeBlockRef(ropeBlock);
      const latent = new Float64Array(T * g.latentWidth);
      const rope = new Float64Array(T * layout.ropeWidth);
      for (let j = 0; j < T; j++) {
        const k = j % PAGE_TOKENS;
        for (let c = 0; c < g.latentWidth; c++) latent[j * g.latentWidth + c] = j < sealed ? dLat[k * g.latentWidth + c] : latentF32[(j - sealed) * g.latentWidth + c];
        for (let c = 0; c < layout.ropeWidth; c++) rope[j * layout.ropeWidth + c] = j < sealed ? dRope[k * layout.ropeWidth + c] : ropeF32[(j - sealed) * layout.ropeWidth + c];
      }
      const ref = mlaAttentionRef(g, { length: T, latent, rope, modality }, queries);
      mlaCheck = Math.max(...ref.latentOut.map((r, m) => relativeError(out.latentOut[m], r)), ...ref.mass.map((r, m) => relativeError(out.mass[m], r)));
    }
    runner.writeQueries(packQueries(g, queries));
    let plan = { pages: 0, splitCount: 0, pagesPerSplit: 0 };
    const mla = await time(async () => {
      const enc = device.createCommandEncoder();
      plan = (await runner.encode(enc, cache, 0, 1)).plan;
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
    }, cfg);
    const mlaBatched = await timeBatched(device, async (enc) => void (await runner.encode(enc, cache, 0, 1)), cfg);
    cache.destroy();

    // --- GQA baselines on the uncompressed f32 past K/V [1, n_kv, T, d_h] (BNSH), resident on the same device:
    // onnxruntime-web's GroupQueryAttention, and a same-harness WGSL flash-decoding GQA kernel reading the same buffers.
    const shape = { heads: g.heads, kvHeads: g.kvHeads, headDim: g.headDim };
    const wgslGqa = new GqaBaseline(backend.ctx, shape, T);
    const kvValues = g.kvHeads * T * g.headDim;
    const pattern = Float32Array.from({ length: 1 << 16 }, () => rnd());
    const kvAt = (i: number, which: 0 | 1): number => pattern[(i * 7 + which * 12345) % pattern.length];
    for (const which of [0, 1] as const) {
      const buf = which === 0 ? wgslGqa.k : wgslGqa.v;
      const chunk = new Float32Array(1 << 16);
      for (let off = 0; off < kvValues; off += chunk.length) {
        const n = Math.min(chunk.length, kvValues - off);
        for (let i = 0; i < n; i++) chunk[i] = kvAt(off + i, which);
        device.queue.writeBuffer(buf, off * 4, chunk, 0, n);
      }
    }
    const qGqa = Float32Array.from({ length: g.heads * g.headDim }, () => 0.1 * rnd());
    const kNew = Float32Array.from({ length: g.kvHeads * g.headDim }, () => rnd());
    const vNew = Float32Array.from({ length: g.kvHeads * g.headDim }, () => rnd());
    /** f64 GQA: head h attends to KV head ⌊h/(n_h/n_kv)⌋ over the past plus, optionally, the new token. */
    const gqaRef = (withNew: boolean): Float64Array => {
      const out = new Float64Array(g.heads * g.headDim);
      const n = T + (withNew ? 1 : 0);
      const d = g.headDim;
      for (let h = 0; h < g.heads; h++) {
        const kv = Math.floor(h / (g.heads / g.kvHeads));
        const key = (j: number, c: number): number => (j < T ? kvAt((kv * T + j) * d + c, 0) : kNew[kv * d + c]);
        const val = (j: number, c: number): number => (j < T ? kvAt((kv * T + j) * d + c, 1) : vNew[kv * d + c]);
        const sc = new Float64Array(n);
        for (let j = 0; j < n; j++) {
          let a = 0;
          for (let c = 0; c < d; c++) a += qGqa[h * d + c] * key(j, c);
          sc[j] = a / Math.sqrt(d);
        }
        const mx = Math.max(...sc);
        let z = 0;
        for (let j = 0; j < n; j++) z += (sc[j] = Math.exp(sc[j] - mx));
        for (let j = 0; j < n; j++) for (let c = 0; c < d; c++) out[h * d + c] += (sc[j] / z) * val(j, c);
      }
      return out;
    };
    wgslGqa.writeQuery(qGqa);
    let wgslGqaCheck: number | null = null;
    if (T <= 1024) {
      const enc = device.createCommandEncoder();
      await wgslGqa.encode(enc);
      device.queue.submit([enc.finish()]);
      wgslGqaCheck = relativeError(await wgslGqa.readOutput(), gqaRef(false));
    }
    const gqaWgsl = await time(async () => {
      const enc = device.createCommandEncoder();
      await wgslGqa.encode(enc);
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
    }, cfg);
    const gqaWgslBatched = await timeBatched(device, (enc) => wgslGqa.encode(enc), cfg);

    const feeds = (): Record<string, OrtTensor> => ({
      query: new ort.Tensor("float32", qGqa, [1, 1, g.heads * g.headDim]),
      key: new ort.Tensor("float32", kNew, [1, 1, g.kvHeads * g.headDim]),
      value: new ort.Tensor("float32", vNew, [1, 1, g.kvHeads * g.headDim]),
      past_key: ort.Tensor.fromGpuBuffer(wgslGqa.k, { dataType: "float32", dims: [1, g.kvHeads, T, g.headDim] }),
      past_value: ort.Tensor.fromGpuBuffer(wgslGqa.v, { dataType: "float32", dims: [1, g.kvHeads, T, g.headDim] }),
      seqlens_k: new ort.Tensor("int32", Int32Array.of(T), [1]),
      total_sequence_length: new ort.Tensor("int32", Int32Array.of(T + 1), []),
    });
    let gqaError: string | null = null;
    let gqa: Timing | null = null;
    let gqaCheck: number | null = null;
    try {
      const first = await session.run(feeds());
      if (T <= 1024) gqaCheck = relativeError(Float64Array.from(await first.output.getData()), gqaRef(true));
      for (const t of Object.values(first)) t.dispose();
      gqa = await time(async () => {
        const out = await session.run(feeds());
        await device.queue.onSubmittedWorkDone();
        for (const t of Object.values(out)) t.dispose();
      }, cfg);
    } catch (e) {
      gqaError = `${(e as Error).name}: ${(e as Error).message}`;
    }
    wgslGqa.destroy();
    results.push({ context: T, sealed, tail, plan, mla, mlaBatched, mlaMaxRelError: mlaCheck, gqa, gqaMaxRelError: gqaCheck, gqaError, gqaWgsl, gqaWgslBatched, gqaWgslMaxRelError: wgslGqaCheck, gqaWgslSplits: wgslGqa.splitCount });
  }
  const info = device.adapterInfo;
  return {
    adapter: info ? [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") : "",
    f16: backend.ctx.features.f16,
    batch: cfg.batch,
    bytesPerTokenMla: bytesPerSealedToken(layout),
    tailBytesPerToken: layout.tailStride * 4,
    /** Pass-1 partials written then read by pass 2, per split: heads · (spaces·D_c + 4) f32. */
    partialBytesPerSplit: g.heads * (g.spaces * g.latentWidth + 4) * 4,
    results,
  };
}

