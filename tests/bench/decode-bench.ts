// Core of `npm run bench:decode` (runs in the page; decode.bench.ts drives Chromium): Qwen2.5-VL-3B's language model
// with deterministic random int4 (block 32) weights, `layers` of its 36 layers on both sides.
//   ours:     the GPU engine (runtime/gpu/engine.ts) on the MLA-converted shapes (d_kv 64, 32 rope dims, two latent
//             spaces, int4 latent cache g32, int8 rope), history restored into the cache as sealed chunks;
//   baseline: onnxruntime-web's WebGPU EP on the decoder graph of onnx-decoder.ts (GroupQueryAttention over f32 past
//             K/V, MatMulNBits int4), as transformers.js runs it: logits read back each step.
// Shared tensors (q/o projections, MLP, norms, tied embedding/LM head) are the same bytes on both sides. Also: the GPU
// vision tower (runtime/vision/qwen2_5_vl-vision-gpu.ts) on a 448×448 image with Qwen2.5-VL-3B's vision geometry and
// random f16 weights, `visionLayers` of its 32 blocks.
import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { Qwen25VisionConfig } from "../../checkpoint/families/qwen2_5_vl.ts";
import { createWasmCodec } from "../../format/codec/wasm.ts";
import { codecSimdWasmBytes } from "../../build/codec-wasm-bytes.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { GpuContext } from "../../kernels/gpu-context.ts";
import { readUint32, submitCalls, uploadBuffer } from "../../kernels/dispatch.ts";
import { linearSplitCalls, uploadWeights, uploadWeightsSplit, type GpuWeights, type LinearWeights } from "../../kernels/matmul-nbits.ts";
import { rmsNormCall } from "../../kernels/norm-act.ts";
import { samplingCall } from "../../kernels/sampling.ts";
import type { MatMulNBitsWeight } from "../../checkpoint/bundle/matmul-nbits.ts";
import { GpuEngine } from "../../runtime/gpu/engine.ts";
import { codecSlotQuantizer } from "../../runtime/mla/slot-sealing.ts";
import type { EngineWeights } from "../../runtime/gpu/engine-weights.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";
import { planQwen25Vision } from "../../runtime/vision/qwen2_5_vl-vision.ts";
import { Qwen25VisionGpu, type VisionWeightSource } from "../../runtime/vision/qwen2_5_vl-vision-gpu.ts";
import { mulberry32 } from "../helpers/mulberry32.ts";
import type { OrtModule } from "../kernels/kernel-bench.ts";
import { decoderOnnx, decoderWeightBytes, pastKey, pastValue, QWEN25VL_3B_TEXT, randomDecoderWeights, type DecoderGeometry, type DecoderWeights } from "./onnx-decoder.ts";

export interface DecodeBenchConfig {
  readonly layers: number;
  readonly visionLayers: number;
  readonly contexts: readonly number[];
  readonly prefill: number;
  readonly decodeSteps: number;
  /** Run only these sides (diagnostics); the others' figures stay empty. */
  readonly only?: readonly ("ours" | "baseline" | "vision")[];
}

export const D_KV = 64;
export const ROPE_DIMS = 32;
export const CHUNK_TOKENS = 64;
export const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };

export const QWEN25VL_3B_VISION: Qwen25VisionConfig = {
  depth: 32,
  hiddenSize: 1280,
  intermediateSize: 3420,
  numHeads: 16,
  headDim: 80,
  inChans: 3,
  outHiddenSize: 2048,
  patchSize: 14,
  temporalPatchSize: 2,
  spatialMergeSize: 2,
  windowSize: 112,
  fullattBlockIndexes: [7, 15, 23, 31],
  tokensPerSecond: 2,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
};

export interface SideFigures {
  /** tokens/s of one decode step after each history length (key: tokens). */
  readonly decodeTps: Record<string, number | null>;
  /** (ms per decode step − lmHeadMs) / layers: one decoder layer's share. */
  readonly decodeMsPerLayer: Record<string, number | null>;
  readonly prefillTps: number | null;
  /** (prefill ms − lmHeadMs) / layers. */
  readonly prefillMsPerLayer: number | null;
  /** The final norm + tied LM head (151,936 × 2048 int4) + next-token pick alone, ms per token (same path as a step). */
  readonly lmHeadMs: number | null;
  readonly gpuBytes: { readonly weights: number; readonly cache: Record<string, number> };
  readonly errors: string[];
}

export interface DecodeBenchResult {
  readonly adapter: string;
  readonly layers: number;
  readonly ours: SideFigures;
  readonly baseline: SideFigures;
  readonly vision: { readonly layers: number; readonly patches: number; readonly ms: number | null; readonly msPerBlock: number | null; readonly msFullDepthEstimate: number | null; readonly weightBytes: number; readonly error: string | null };
  readonly ms: number;
}

const now = () => performance.now();

function nbits(q: MatMulNBitsWeight): LinearWeights {
  return { kind: "nbits", n: q.n, k: q.k, bits: q.bits, block: q.block, data: q.b, scales: q.scales };
}

/** A text config of the geometry (Qwen2.5-VL ids; 1-D rotary positions for text equal M-RoPE's). */
function textConfig(g: DecoderGeometry): TextModelConfig {
  return {
    modelType: "qwen2_5_vl",
    hiddenSize: g.hidden,
    numLayers: g.layers,
    numHeads: g.heads,
    numKvHeads: g.kvHeads,
    headDim: g.headDim,
    intermediateSize: g.intermediate,
    rmsNormEps: g.eps,
    ropeTheta: g.ropeTheta,
    mropeSection: [16, 24, 24],
    unsupportedRopeScaling: null,
    vocabSize: g.vocab,
    tieWordEmbeddings: true,
    attentionBias: true,
    tokens: { bos: null, eos: 151645, imagePad: 151655, visionStart: 151652, visionEnd: 151653, videoPad: 151656 },
    imageRoutedTokenIds: [151655, 151652, 151653],
  };
}

/** Our side's GPU weights: the baseline's bytes where the tensors are shared, MLA-specific ones random int4. */
function ourWeights(ctx: GpuContext, g: DecoderGeometry, w: DecoderWeights, seed: number): EngineWeights {
  const rnd = mulberry32(seed);
  const owned: Array<{ destroy(): void }> = [];
  let bytes = 0;
  const lin = (q: LinearWeights, label: string): GpuWeights => {
    const u = uploadWeights(ctx, q, label);
    owned.push(u);
    bytes += u.bytes;
    return u;
  };
  const randomQ = (n: number, k: number): LinearWeights => {
    const kb = Math.ceil(k / 32);
    const data = new Uint8Array(n * kb * 16);
    for (let i = 0; i < data.length; i++) data[i] = (rnd() * 256) | 0;
    const scales = new Uint16Array(n * kb).fill(0x1c00 /* 2^-8 */);
    return { kind: "nbits", n, k, bits: 4, block: 32, data, scales };
  };
  const vec = (a: Float32Array, label: string) => {
    const b = uploadBuffer(ctx, label, a);
    owned.push(b);
    bytes += b.size;
    return b;
  };
  const r = ROPE_DIMS;
  const D = D_KV * g.kvHeads;
  const embed = uploadWeightsSplit(ctx, nbits(w.lmHead), "embed");
  owned.push(embed);
  bytes += embed.bytes;
  const lmHead = uploadWeightsSplit(ctx, nbits(w.lmHead), "lm-head");
  owned.push(lmHead);
  bytes += lmHead.bytes;
  const kept = Array.from({ length: g.kvHeads }, () => Array.from({ length: r / 2 }, (_, i) => i * ((g.headDim / 2) / (r / 2))));
  const layers = w.layers.map((lw, l) => {
    const projBias = new Float32Array(g.heads * g.headDim + g.kvHeads * r);
    projBias.set(lw.bq);
    return {
      inputNorm: vec(lw.ln1, `L${l}.ln1`),
      postNorm: vec(lw.ln2, `L${l}.ln2`),
      qProj: lin(nbits(lw.q), `L${l}.q`),
      kRProj: lin(randomQ(g.kvHeads * r, g.hidden), `L${l}.kr`),
      projBias: vec(projBias, `L${l}.bias`),
      spaces: [0, 1].map((m) => ({
        downKv: lin(randomQ(D, g.hidden), `L${l}.s${m}.dkv`),
        upK: lin(randomQ(g.kvHeads * (g.headDim - r), D), `L${l}.s${m}.uk`),
        upKBias: null,
        upV: lin(randomQ(g.kvHeads * g.headDim, D), `L${l}.s${m}.uv`),
        upVBias: vec(lw.bv, `L${l}.s${m}.bv`),
      })),
      oProj: lin(nbits(lw.o), `L${l}.o`),
      gate: lin(nbits(lw.gate), `L${l}.gate`),
      up: lin(nbits(lw.up), `L${l}.up`),
      down: lin(nbits(lw.down), `L${l}.down`),
      keptPairs: kept,
    };
  });
  return { embed, finalNorm: vec(w.finalNorm, "final-norm"), lmHead, layers, bytes, destroy: () => owned.forEach((o) => o.destroy()) };
}

/** The engine reads only the config and the MLA dims of the host model when its weights are given on the GPU. */
function modelShape(g: DecoderGeometry): MlaModelWeights {
  return { config: textConfig(g), ropeDims: ROPE_DIMS, dKv: D_KV, latentSpaces: 2, shell: undefined, attention: [], conversion: undefined } as unknown as MlaModelWeights;
}

async function oursSide(ctx: GpuContext, g: DecoderGeometry, w: DecoderWeights, cfg: DecodeBenchConfig, log: (s: string) => void): Promise<SideFigures> {
  const errors: string[] = [];
  const codec = createWasmCodec(codecSimdWasmBytes);
  const weights = ourWeights(ctx, g, w, 77);
  const maxCtx = Math.max(...cfg.contexts, cfg.prefill) + cfg.decodeSteps + 1;
  const engine = await GpuEngine.create(ctx, modelShape(g), { codec, codecParams: CODEC, chunkTokens: CHUNK_TOKENS, weights, maxBlock: 256, initialCapacity: maxCtx });
  const decodeTps: Record<string, number | null> = {};
  const decodeMsPerLayer: Record<string, number | null> = {};
  const cache: Record<string, number> = {};
  let prefillTps: number | null = null;
  let prefillMsPerLayer: number | null = null;
  let lmHeadMs: number | null = null;
  try {
    lmHeadMs = await oursLmHeadMs(ctx, g, weights, cfg.decodeSteps);
    const rnd = mulberry32(5);
    // Prefill of a `prefill`-token prompt (blocks of 256).
    const ids = Array.from({ length: cfg.prefill }, () => (rnd() * 150000) | 0);
    await engine.append(ids.slice(0, 8)); // warm-up: pipelines of a small block
    engine.reset();
    log(`ours: prefill ${cfg.prefill}`);
    const t0 = now();
    const r = await engine.append(ids);
    const ms = now() - t0;
    prefillTps = (cfg.prefill / ms) * 1000;
    prefillMsPerLayer = (ms - lmHeadMs) / g.layers;
    let next = r.next;
    for (const T of cfg.contexts) {
      engine.reset();
      restoreHistory(engine, codec, g, T, rnd);
      next = await engine.step(next); // warm-up at this length
      log(`ours: decode after ${T}`);
      const t1 = now();
      for (let s = 0; s < cfg.decodeSteps; s++) next = await engine.step(next);
      const per = (now() - t1) / cfg.decodeSteps;
      decodeTps[T] = 1000 / per;
      decodeMsPerLayer[T] = (per - lmHeadMs) / g.layers;
      cache[T] = engine.memory.cache;
    }
    return { decodeTps, decodeMsPerLayer, prefillTps, prefillMsPerLayer, lmHeadMs, gpuBytes: { weights: engine.memory.weights, cache }, errors };
  } catch (e) {
    errors.push(`${(e as Error).name}: ${(e as Error).message}`);
    return { decodeTps, decodeMsPerLayer, prefillTps, prefillMsPerLayer, lmHeadMs, gpuBytes: { weights: weights.bytes, cache }, errors };
  } finally {
    engine.dispose();
    weights.destroy();
  }
}

/** Our final norm + LM head GEMV (split in row ranges) + greedy pick, one submission, 4 bytes read back: ms each. */
async function oursLmHeadMs(ctx: GpuContext, g: DecoderGeometry, w: EngineWeights, steps: number): Promise<number> {
  const h = uploadBuffer(ctx, "lm-h", Float32Array.from({ length: g.hidden }, (_, i) => Math.sin(i)));
  const hn = ctx.storageBuffer("lm-hn", g.hidden * 4);
  const logits = ctx.storageBuffer("lm-logits", g.vocab * 4);
  const id = ctx.storageBuffer("lm-id", 16);
  try {
    const calls = [rmsNormCall(ctx, h, w.finalNorm, hn, 1, g.hidden, g.eps), ...linearSplitCalls(ctx, w.lmHead, hn, 1, logits), samplingCall(ctx, { logits, banned: null, out: id }, g.vocab, { temperature: 0, topK: 0, topP: 1, seed: 0, step: 0 })];
    const once = async () => {
      await submitCalls(ctx, calls, "lm-head");
      await readUint32(ctx, id, 0, 1);
    };
    await once();
    const t0 = now();
    for (let s = 0; s < steps; s++) await once();
    return (now() - t0) / steps;
  } finally {
    [h, hn, logits, id].forEach((b) => b.destroy());
  }
}

/** A T-token text history restored as the edge store delivers it: sealed chunks (codec blocks) + the open slot's rows. */
function restoreHistory(engine: GpuEngine, codec: ReturnType<typeof createWasmCodec>, g: DecoderGeometry, T: number, rnd: () => number): void {
  const D = D_KV * g.kvHeads;
  const R = ROPE_DIMS * g.kvHeads;
  const sealed = Math.floor(T / CHUNK_TOKENS) * CHUNK_TOKENS;
  const rows = (n: number, w: number, s: number) => Float32Array.from({ length: n * w }, () => (rnd() * 2 - 1) * s);
  // The session's own slot quantizer (what sealed the chunks the edge store returns).
  const q = codecSlotQuantizer(codec, CODEC, { latentWidth: D, ropeWidth: R, ropeDims: ROPE_DIMS });
  for (let l = 0; l < g.layers; l++) {
    for (let t = 0; t < sealed; t += CHUNK_TOKENS) {
      const b = q.quantize(rows(CHUNK_TOKENS, D, 1), rows(CHUNK_TOKENS, R, 2), CHUNK_TOKENS);
      engine.loadSealed(l, t, b.latent, b.rope);
    }
  }
  const tail = Array.from({ length: g.layers }, () => ({ latent: rows(T - sealed, D, 1), rope: rows(T - sealed, R, 2) }));
  engine.finishRestore(T, new Uint8Array(T), tail, T);
}

interface OrtTensorLike {
  getData(): Promise<ArrayLike<number>>;
  dispose(): void;
}

async function baselineSide(ort: OrtModule, g: DecoderGeometry, w: DecoderWeights, cfg: DecodeBenchConfig, log: (s: string) => void): Promise<SideFigures> {
  const errors: string[] = [];
  const decodeTps: Record<string, number | null> = {};
  const decodeMsPerLayer: Record<string, number | null> = {};
  const cache: Record<string, number> = {};
  let prefillTps: number | null = null;
  let prefillMsPerLayer: number | null = null;
  let lmHeadMs: number | null = null;
  const maxPos = Math.max(...cfg.contexts, cfg.prefill) + cfg.decodeSteps + 8;
  const onnx = decoderOnnx(g, w, maxPos);
  const create = ort.InferenceSession.create as unknown as (m: Uint8Array, o: Record<string, unknown>) => Promise<{ run(f: Record<string, unknown>): Promise<Record<string, OrtTensorLike>>; release(): Promise<void> }>;
  const session = await create(onnx.model, { executionProviders: ["webgpu"], preferredOutputLocation: "gpu-buffer", externalData: [{ path: onnx.dataPath, data: onnx.data }] });
  const device = await (ort.env.webgpu.device as Promise<GPUDevice>);
  const Tensor = ort.Tensor as unknown as {
    new (type: "float32" | "int32", data: Float32Array | Int32Array, dims: number[]): OrtTensorLike;
    fromGpuBuffer(b: GPUBuffer, o: { dataType: "float32"; dims: number[] }): OrtTensorLike;
  };
  const rnd = mulberry32(9);
  const kvDims = (T: number) => [1, g.kvHeads, T, g.headDim];
  const run = async (S: number, P: number, past: Array<[GPUBuffer, GPUBuffer]> | null) => {
    const feeds: Record<string, unknown> = {
      inputs_embeds: new Tensor("float32", Float32Array.from({ length: S * g.hidden }, () => (rnd() * 2 - 1) * 0.05), [1, S, g.hidden]),
      seqlens_k: new Tensor("int32", Int32Array.of(P + S - 1), [1]),
      total_sequence_length: new Tensor("int32", Int32Array.of(P + S), []),
    };
    for (let l = 0; l < g.layers; l++) {
      feeds[pastKey(l)] = past ? Tensor.fromGpuBuffer(past[l][0], { dataType: "float32", dims: kvDims(P) }) : new Tensor("float32", new Float32Array(0), kvDims(0));
      feeds[pastValue(l)] = past ? Tensor.fromGpuBuffer(past[l][1], { dataType: "float32", dims: kvDims(P) }) : new Tensor("float32", new Float32Array(0), kvDims(0));
    }
    const out = await session.run(feeds);
    // transformers.js reads the logits back to pick the next token.
    await out.logits.getData();
    for (const t of Object.values(out)) t.dispose();
  };
  try {
    lmHeadMs = await baselineLmHeadMs(create, Tensor, g, w, cfg.decodeSteps);
    await run(8, 0, null); // warm-up
    log(`baseline: prefill ${cfg.prefill}`);
    const t0 = now();
    await run(cfg.prefill, 0, null);
    const ms = now() - t0;
    prefillTps = (cfg.prefill / ms) * 1000;
    prefillMsPerLayer = (ms - lmHeadMs) / g.layers;
    for (const T of cfg.contexts) {
      const bytes = g.kvHeads * T * g.headDim * 4;
      const past: Array<[GPUBuffer, GPUBuffer]> = [];
      for (let l = 0; l < g.layers; l++) {
        const pair: [GPUBuffer, GPUBuffer] = [0, 1].map(() => {
          const b = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
          device.queue.writeBuffer(b, 0, Float32Array.from({ length: bytes / 4 }, () => rnd() * 2 - 1));
          return b;
        }) as [GPUBuffer, GPUBuffer];
        past.push(pair);
      }
      cache[T] = 2 * g.layers * bytes;
      try {
        await run(1, T, past); // warm-up at this length
        log(`baseline: decode after ${T}`);
        const t1 = now();
        for (let s = 0; s < cfg.decodeSteps; s++) await run(1, T, past);
        const per = (now() - t1) / cfg.decodeSteps;
        decodeTps[T] = 1000 / per;
        decodeMsPerLayer[T] = (per - lmHeadMs) / g.layers;
      } finally {
        past.flat().forEach((b) => b.destroy());
      }
    }
  } catch (e) {
    errors.push(`${(e as Error).name}: ${(e as Error).message}`);
  } finally {
    await session.release();
  }
  return { decodeTps, decodeMsPerLayer, prefillTps, prefillMsPerLayer, lmHeadMs, gpuBytes: { weights: decoderWeightBytes(w), cache }, errors };
}

type SessionFactory = (m: Uint8Array, o: Record<string, unknown>) => Promise<{ run(f: Record<string, unknown>): Promise<Record<string, OrtTensorLike>>; release(): Promise<void> }>;
type TensorFactory = { new (type: "float32" | "int32", data: Float32Array | Int32Array, dims: number[]): OrtTensorLike };

/** The same graph with no decoder layers (Slice → final norm → LM head), logits read back: ms per token. */
async function baselineLmHeadMs(create: SessionFactory, Tensor: TensorFactory, g: DecoderGeometry, w: DecoderWeights, steps: number): Promise<number> {
  const onnx = decoderOnnx({ ...g, layers: 0 }, { layers: [], finalNorm: w.finalNorm, lmHead: w.lmHead }, 8);
  const session = await create(onnx.model, { executionProviders: ["webgpu"], preferredOutputLocation: "gpu-buffer", externalData: [{ path: onnx.dataPath, data: onnx.data }] });
  try {
    const once = async () => {
      const out = await session.run({
        inputs_embeds: new Tensor("float32", Float32Array.from({ length: g.hidden }, (_, i) => Math.sin(i)), [1, 1, g.hidden]),
        seqlens_k: new Tensor("int32", Int32Array.of(0), [1]),
        total_sequence_length: new Tensor("int32", Int32Array.of(1), []),
      });
      await out.logits.getData();
      for (const t of Object.values(out)) t.dispose();
    };
    await once();
    const t0 = now();
    for (let s = 0; s < steps; s++) await once();
    return (now() - t0) / steps;
  } finally {
    await session.release();
  }
}

/** Random f16 weights in N(0, 0.02)-like magnitudes (bits drawn directly), f32 vectors near 1 (norms) or 0 (biases). */
function randomVisionSource(seed: number): VisionWeightSource {
  const rnd = mulberry32(seed);
  return {
    linear(_name, n, k) {
      const data = new Uint16Array(n * k);
      // sign | exponent 2^-6..2^-9 | random mantissa: |w| in [0.002, 0.03]
      for (let i = 0; i < data.length; i++) data[i] = (rnd() < 0.5 ? 0x8000 : 0) | ((6 + ((rnd() * 4) | 0)) << 10) | ((rnd() * 1024) | 0);
      return { kind: "f16", n, k, data };
    },
    vector(name, length) {
      const norm = name.endsWith("norm1.weight") || name.endsWith("norm2.weight") || name.endsWith("ln_q.weight");
      return Float32Array.from({ length }, () => (norm ? 1 : 0) + (rnd() * 2 - 1) * 0.05);
    },
  };
}

async function visionSide(ctx: GpuContext, layers: number, log: (s: string) => void): Promise<DecodeBenchResult["vision"]> {
  // The real model's full-attention blocks below `layers`, else the last block: the truncated tower has both kinds.
  const full = QWEN25VL_3B_VISION.fullattBlockIndexes.filter((i) => i < layers);
  const cfg: Qwen25VisionConfig = { ...QWEN25VL_3B_VISION, depth: layers, fullattBlockIndexes: full.length ? full : [layers - 1] };
  const grid = { t: 1, h: 32, w: 32 }; // 448×448 / 14
  const plan = planQwen25Vision(cfg, [grid]);
  const K0 = cfg.inChans * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize;
  const rnd = mulberry32(3);
  const pixels = Float32Array.from({ length: plan.patches * K0 }, () => rnd() * 4 - 2);
  let tower: Qwen25VisionGpu | null = null;
  try {
    tower = Qwen25VisionGpu.upload(ctx, cfg, randomVisionSource(4));
    // Warm-up on a 56×56 image: the same pipelines (keyed by formats and dims, not sizes), a fraction of the work.
    const small = planQwen25Vision(cfg, [{ t: 1, h: 4, w: 4 }]);
    await tower.run(small, pixels.subarray(0, small.patches * K0));
    log(`vision: ${layers} blocks, ${plan.patches} patches`);
    let ms = 0;
    await tower.run(plan, pixels, (t) => (ms = t.ms));
    // Full-depth estimate: ms per block × 32 (the truncated tower's share of full-attention blocks is higher than the
    // real 4 of 32, so this overestimates).
    return { layers, patches: plan.patches, ms, msPerBlock: ms / layers, msFullDepthEstimate: (ms / layers) * QWEN25VL_3B_VISION.depth, weightBytes: tower.weightBytes, error: null };
  } catch (e) {
    return { layers, patches: plan.patches, ms: null, msPerBlock: null, msFullDepthEstimate: null, weightBytes: tower?.weightBytes ?? 0, error: `${(e as Error).name}: ${(e as Error).message}` };
  } finally {
    tower?.destroy();
  }
}

export async function runDecodeBench(ort: OrtModule, cfg: DecodeBenchConfig, log: (s: string) => void): Promise<DecodeBenchResult> {
  const t0 = now();
  ort.env.wasm.numThreads = 1;
  ort.env.logLevel = "error";
  const g: DecoderGeometry = { ...QWEN25VL_3B_TEXT, layers: cfg.layers };
  log(`weights: ${cfg.layers} layers`);
  const w = randomDecoderWeights(g, 2026, "codes");
  const empty: SideFigures = { decodeTps: {}, decodeMsPerLayer: {}, prefillTps: null, prefillMsPerLayer: null, lmHeadMs: null, gpuBytes: { weights: 0, cache: {} }, errors: ["not run (--only)"] };
  // Our side first, on a device with the adapter's limits (the 155 MB int4 embedding binds whole); then the baseline
  // on onnxruntime-web's own device, in the same page.
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const device = await adapter.requestDevice({ requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize } });
  const ctx = await GpuContext.create({ device });
  const ours = !cfg.only || cfg.only.includes("ours") ? await oursSide(ctx, g, w, cfg, log) : empty;
  const vision = !cfg.only || cfg.only.includes("vision") ? await visionSide(ctx, cfg.visionLayers, log) : { layers: cfg.visionLayers, patches: 0, ms: null, msPerBlock: null, msFullDepthEstimate: null, weightBytes: 0, error: "not run (--only)" };
  device.destroy();
  const baseline = !cfg.only || cfg.only.includes("baseline") ? await baselineSide(ort, g, w, cfg, log) : empty;
  const info = device.adapterInfo;
  return { adapter: info ? [info.vendor, info.architecture, info.description].filter(Boolean).join(" ") : "", layers: cfg.layers, ours, baseline, vision, ms: now() - t0 };
}

/** Bytes of an int4 block-32 MatMulNBits weight: B + f16 scales (symmetric: no zero points). */
const int4Bytes = (n: number, k: number) => n * Math.ceil(k / 32) * (16 + 2);

/**
 * The bundle `mla-edge pack --weights int4 --block 32` writes for the MLA-converted Qwen2.5-VL-3B (two latent spaces,
 * d_kv 64, r 32) with f16 vision weights and f32 norms/biases, from the tensor table (without the ≤ 255-byte padding
 * of each piece and the side files).
 */
export function mlaBundleBytes(g: DecoderGeometry = QWEN25VL_3B_TEXT, v: Qwen25VisionConfig = QWEN25VL_3B_VISION): { text: number; vision: number; total: number } {
  const H = g.hidden;
  const D = D_KV * g.kvHeads;
  const r = ROPE_DIMS;
  let layer = int4Bytes(g.heads * g.headDim, H) + int4Bytes(g.kvHeads * r, H) + int4Bytes(H, g.heads * g.headDim);
  layer += 2 * (int4Bytes(D, H) + int4Bytes(g.kvHeads * (g.headDim - r), D) + int4Bytes(g.kvHeads * g.headDim, D));
  layer += 2 * int4Bytes(g.intermediate, H) + int4Bytes(H, g.intermediate);
  layer += 4 * (2 * H + g.heads * g.headDim + g.kvHeads * r + 2 * (g.kvHeads * g.headDim));
  const text = g.layers * layer + int4Bytes(g.vocab, H) + 4 * H;
  const Dv = v.hiddenSize;
  const F = v.intermediateSize;
  const M = Dv * v.spatialMergeSize ** 2;
  const K0 = v.inChans * v.temporalPatchSize * v.patchSize ** 2;
  const block = 2 * (3 * Dv * Dv + Dv * Dv + 3 * Dv * F) + 4 * (2 * Dv + 3 * Dv + Dv + 2 * F + Dv);
  const vision = 2 * Dv * K0 + v.depth * block + 2 * (M * M + v.outHiddenSize * M) + 4 * (Dv + M + v.outHiddenSize);
  return { text, vision, total: text + vision };
}
