// A chat model from a browser bundle (docs/bundle.md) for the CPU runtime: loadBundle streams, verifies and caches the
// shards (Cache Storage in browsers, a folder in Node) with progress; every tensor is then rebuilt from its pieces —
// MatMulNBits weights dequantized ((code − zp) · scale, the f64 reference rounded to f32), f16 norms widened — into an
// in-memory f32 safetensors file that loadChatModel reads as it reads a converted checkpoint. The vision tower is the
// bundle's vision.onnx, run by the caller's encoder factory (onnxruntime-web), or (a real Qwen2.5-VL bundle) the model's own
// vision transformer from its visual.* tensors; tokenizer, chat template, image processor and generation config come
// from the bundle's side files. With a WebGPU context (`gpu`), the same shard bytes also go to the GPU as they are
// (MatMulNBits bound without dequantizing, runtime/gpu/bundle-weights.ts) and sessions decode on the GPU engine; the
// f32 host model stays as the reference and the fallback (a session the engine cannot run). With `hostWeights: false`
// there is no host model at all: shard windows stream straight into GPU buffers (only the vision tower's arrays are
// held on the host until the GPU tower has them), the vision transformer runs on the GPU too, and the chat model is
// the engine alone — what a real model needs in a browser (a 3B model's f32 host copy would be 12 GB). Either way the
// answers are those of the bundle's quantized weights. Browser-safe.

import { BundleError, type BundleArray, type BundleManifest } from "../../checkpoint/bundle/manifest.ts";
import { dequantizeMatMulNBits, type NBits, type QuantBlock } from "../../checkpoint/bundle/matmul-nbits.ts";
import { serializeSafetensors, type TensorToWrite } from "../../checkpoint/safetensors-writer.ts";
import type { Codec } from "../../format/codec/types.ts";
import { f16ToF32 } from "../../format/codec/fp16.ts";
import type { MlaBackend } from "../../kernels/backend.ts";
import type { ModelRef } from "../../format/wire/messages.ts";
import { chatProcessorFromFiles, createChatModel, loadChatModel, type ChatModel, type ChatVision } from "../chat-model.ts";
import { isVisionTensor } from "../../checkpoint/families/index.ts";
import { parseQwen25VLConfig, qwen25VisionPrefix } from "../../checkpoint/families/qwen2_5_vl.ts";
import { RuntimeError } from "../errors.ts";
import { llmGrid } from "../qwen2_5_vl-model.ts";
import { planQwen25Vision } from "../vision/qwen2_5_vl-vision.ts";
import { Qwen25VisionGpu, visionSourceFromBundle } from "../vision/qwen2_5_vl-vision-gpu.ts";
import { bundleModelShape } from "../gpu/bundle-weights.ts";
import { tensorArrays, tensorRouterSink } from "./bundle-loader.ts";
import type { ProcessedImage } from "../inputs/image-processor.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { bundleEngineWeights, bundleGpuArrays, type BundleGpuArrays } from "../gpu/bundle-weights.ts";
import { modelEngine } from "../gpu/chat-engine.ts";
import type { VisionEncoder } from "../vision/vision-encoder.ts";
import { loadBundle, type LoadBundleOptions, type LoadedBundle, type ShardSink } from "./bundle-loader.ts";

export interface BundleChatModelOptions extends Omit<LoadBundleOptions, "sink"> {
  /**
   * Builds a toy vision encoder from the bundle's vision.onnx (e.g. `OrtVisionEncoder.create(ort, onnx, …)`): used when
   * the bundle has one (the tiny fixture). Without vision.onnx the model's own vision transformer (its `visual.*`
   * tensors in the bundle) runs.
   */
  readonly vision?: (onnx: Uint8Array, manifest: BundleManifest) => VisionEncoder | Promise<VisionEncoder>;
  readonly codec: Codec;
  /** Decoder kernels (WebGPU MLA attention); default null = the CPU reference decoder. */
  readonly kernels?: MlaBackend | null;
  /**
   * A WebGPU context for the GPU engine (e.g. `gpuContextOf(kernels)`): the bundle's weights go to the GPU as they are
   * and sessions decode there. Default null: no engine.
   */
  readonly gpu?: GpuContext | null;
  /**
   * Default true: the f32 host model is built too (the CPU reference and fallback). false (needs `gpu`): the model lives
   * only on the GPU — its sessions run on the engine or fail with `bad_model` (e.g. `storage: "raw"`).
   */
  readonly hostWeights?: boolean;
  /** Default: `{ id: config._name_or_path ?? "tiny-qwen-vl", conversion: <mha2mla dict> + the bundle's quantization }`. */
  readonly ref?: ModelRef;
}

export interface BundleChatModel {
  readonly model: ChatModel;
  readonly bundle: LoadedBundle;
}

/** Collects shard windows as they arrive (the loader hands them over in 256-aligned pieces). */
function collectingSink(): { sink: ShardSink; shard(i: number, size: number): Uint8Array } {
  const windows = new Map<number, Array<{ offset: number; bytes: Uint8Array }>>();
  return {
    sink: {
      write(shard, offset, bytes) {
        let list = windows.get(shard);
        if (list === undefined) windows.set(shard, (list = []));
        list.push({ offset, bytes: bytes.slice() });
      },
    },
    shard(i, size) {
      const out = new Uint8Array(size);
      for (const w of windows.get(i) ?? []) out.set(w.bytes.subarray(0, Math.max(0, Math.min(w.bytes.byteLength, size - w.offset))), w.offset);
      windows.delete(i);
      return out;
    },
  };
}

function arrayBytes(a: BundleArray, shards: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(a.rows * a.rowBytes);
  for (const p of a.pieces) out.set(shards[p.shard].subarray(p.offset, p.offset + p.byteLength), p.rowStart * a.rowBytes);
  return out;
}

/** The bundle's tensors as f32 / i32 safetensors entries (quantized weights dequantized, aliases resolved). */
export function bundleTensors(manifest: BundleManifest, shards: readonly Uint8Array[]): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  const byName = new Map<string, TensorToWrite>();
  for (const t of manifest.tensors) {
    let entry: TensorToWrite;
    if (t.kind === "matmul_nbits") {
      const [n, k] = t.shape;
      const b = arrayBytes(t.b, shards);
      const s = arrayBytes(t.scales, shards);
      const w = dequantizeMatMulNBits({
        n,
        k,
        bits: t.bits as NBits,
        block: t.block as QuantBlock,
        b,
        scales: new Uint16Array(s.buffer, s.byteOffset, s.byteLength / 2),
        zeroPoints: t.zeroPoints ? arrayBytes(t.zeroPoints, shards) : null,
      });
      entry = { name: t.name, dtype: "F32", shape: t.shape, data: Float32Array.from(w) };
    } else {
      const bytes = arrayBytes(t.data, shards);
      const count = t.shape.reduce((a, d) => a * d, 1);
      if (t.dtype === "i32") entry = { name: t.name, dtype: "I32", shape: t.shape, data: new Int32Array(bytes.buffer, bytes.byteOffset, count) };
      else if (t.dtype === "f32") entry = { name: t.name, dtype: "F32", shape: t.shape, data: new Float32Array(bytes.buffer, bytes.byteOffset, count) };
      else {
        const h = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
        entry = { name: t.name, dtype: "F32", shape: t.shape, data: Float32Array.from(h, (x) => f16ToF32(x)) };
      }
    }
    out.push(entry);
    byName.set(t.name, entry);
  }
  for (const [alias, target] of Object.entries(manifest.aliases)) {
    const e = byName.get(target);
    if (e === undefined) throw new BundleError("missing_tensor", `alias ${alias} → ${target}: no such tensor`);
    out.push({ ...e, name: alias });
  }
  return out;
}

/** Downloads (or reads from the cache) the bundle at `url` and builds the chat model it holds. */
export async function loadBundleChatModel(url: string, options: BundleChatModelOptions): Promise<BundleChatModel> {
  if (options.hostWeights === false) {
    if (!options.gpu) throw new RuntimeError("bad_model", "hostWeights: false needs a WebGPU context (gpu): the model would live nowhere");
    return loadGpuOnly(url, options, options.gpu);
  }
  const collect = collectingSink();
  const bundle = await loadBundle(url, { ...options, sink: collect.sink });
  const m = bundle.manifest;
  const shards = m.shards.map((s, i) => collect.shard(i, s.size));
  const safetensors = await serializeSafetensors(bundleTensors(m, shards));
  const files = sideFiles(m, bundle.files);
  const vision = await toyVision(m, bundle.files, options);
  const model = await loadChatModel({
    ...files,
    weights: safetensors,
    ...(vision !== null ? { vision } : {}),
    codec: options.codec,
    kernels: options.kernels ?? null,
    ref: bundleRef(m, options, vision !== null),
  });
  const gpu = options.gpu ?? null;
  if (gpu === null) return { model, bundle };
  const arrays = bundleGpuArrays(gpu, m);
  try {
    for (let i = 0; i < shards.length; i++) await arrays.sink.write(i, 0, shards[i]);
    const weights = bundleEngineWeights(gpu, m, arrays);
    await gpu.device.queue.onSubmittedWorkDone();
    gpu.throwIfFailed();
    return { model: { ...model, engine: modelEngine(gpu, model.shape, weights) }, bundle };
  } catch (e) {
    for (const b of arrays.buffers.values()) b.destroy();
    throw e;
  }
}

/** The bundle's toy vision tower (vision.onnx through the caller's factory), or null for a model's own transformer. */
async function toyVision(m: BundleManifest, files: ReadonlyMap<string, Uint8Array>, options: BundleChatModelOptions): Promise<VisionEncoder | null> {
  const onnx = files.get("vision.onnx");
  if (onnx === undefined) return null;
  if (options.vision === undefined) throw new BundleError("missing_tensor", "the bundle's vision tower is vision.onnx: pass a `vision` factory (onnxruntime-web)");
  return options.vision(onnx, m);
}

/** Default: `{ id: config._name_or_path ?? "tiny-qwen-vl" | model_type, conversion: <mha2mla dict> + the quantization }`. */
function bundleRef(m: BundleManifest, options: BundleChatModelOptions, toy: boolean): ModelRef {
  if (options.ref) return options.ref;
  const raw = m.config as { _name_or_path?: string; model_type?: string; mha2mla?: unknown };
  const q = m.quantization;
  return {
    id: raw._name_or_path ?? (toy ? "tiny-qwen-vl" : (raw.model_type ?? "model")),
    conversion: `${JSON.stringify(raw.mha2mla ?? null)}+bundle:${q.weights}${q.weights === "f16" ? "" : `-b${q.block}${q.zeroPoints ? "-zp" : ""}`}`,
  };
}

/** The bundle's side files as the input processor reads them (chat_template.json is JSON; a .jinja file the template). */
function sideFiles(m: BundleManifest, files: ReadonlyMap<string, Uint8Array>) {
  const json = (name: string | null): unknown => (name !== null && files.has(name) ? (JSON.parse(new TextDecoder().decode(files.get(name)!)) as unknown) : undefined);
  const tokenizer = json(m.tokenizer.tokenizer);
  if (tokenizer === undefined) throw new BundleError("missing_tensor", "the bundle has no tokenizer file");
  const chatTemplate = m.tokenizer.chatTemplate;
  let chatTemplateJson: unknown;
  if (chatTemplate !== null) {
    const bytes = files.get(chatTemplate);
    if (bytes === undefined) throw new BundleError("missing_tensor", `the bundle has no ${chatTemplate} file`);
    chatTemplateJson = chatTemplate.endsWith(".json") ? json(chatTemplate) : { chat_template: new TextDecoder().decode(bytes) };
  }
  return {
    config: m.config,
    tokenizer,
    tokenizerConfig: json(m.tokenizer.tokenizerConfig),
    chatTemplateJson,
    preprocessorConfig: m.preprocessorConfig ?? json("preprocessor_config.json"),
    generationConfig: json("generation_config.json"),
  };
}

/** The model only on the GPU: decoder weights and (a real Qwen2.5-VL bundle) the vision tower from the shard bytes. */
async function loadGpuOnly(url: string, options: BundleChatModelOptions, gpu: GpuContext): Promise<BundleChatModel> {
  // The GPU buffers (and host copies of the vision tower's arrays, kept until the GPU tower is uploaded from them) are
  // made from the manifest loadBundle fetches, before any shard arrives.
  let arrays: BundleGpuArrays | null = null;
  const visionArrays = new Map<string, Uint8Array>();
  const sink = (manifest: BundleManifest): ShardSink => {
    const gpuArrays = (arrays = bundleGpuArrays(gpu, manifest));
    for (const t of manifest.tensors) {
      if (!isVisionTensor(t.name)) continue;
      for (const [part, a] of tensorArrays(t)) visionArrays.set(`${t.name}:${part}`, new Uint8Array(Math.ceil((a.rows * a.rowBytes) / 4) * 4));
    }
    const visionSink = tensorRouterSink(manifest, (slice) => {
      const dst = visionArrays.get(`${slice.tensor.name}:${slice.array}`);
      if (dst) dst.set(slice.bytes.subarray(0, Math.max(0, Math.min(slice.bytes.byteLength, dst.byteLength - slice.arrayOffset))), slice.arrayOffset);
    });
    return {
      async write(shard, offset, bytes) {
        await gpuArrays.sink.write(shard, offset, bytes);
        if (visionArrays.size > 0) await visionSink.write(shard, offset, bytes);
      },
    };
  };
  let tower: Qwen25VisionGpu | null = null;
  try {
    const bundle = await loadBundle(url, { ...options, sink });
    const m = bundle.manifest;
    const files = sideFiles(m, bundle.files);
    const processor = chatProcessorFromFiles(files);
    const shape = bundleModelShape(m);
    const weights = bundleEngineWeights(gpu, m, arrays!);
    const toy = await toyVision(m, bundle.files, options);
    let vision: VisionEncoder | ChatVision;
    if (toy !== null) {
      vision = toy;
    } else {
      const cfg = parseQwen25VLConfig(m.config, "manifest.json config");
      const prefix = qwen25VisionPrefix(m.tensors.map((t) => t.name));
      const array = (name: string, part: "b" | "scales" | "zeroPoints" | "data"): Uint8Array => {
        const a = visionArrays.get(`${name}:${part}`);
        if (a === undefined) throw new BundleError("missing_tensor", `the bundle has no vision array ${name}:${part}`);
        return a;
      };
      const gpuTower = Qwen25VisionGpu.upload(gpu, cfg.vision, visionSourceFromBundle(m, array), prefix);
      tower = gpuTower;
      vision = qwen25VisionOnGpu(gpuTower, prefix);
    }
    visionArrays.clear();
    await gpu.device.queue.onSubmittedWorkDone();
    gpu.throwIfFailed();
    const model = createChatModel({ ref: bundleRef(m, options, toy !== null), weights: null, shape, engine: modelEngine(gpu, shape, weights), processor, vision, codec: options.codec, rawConfig: m.config, kernels: null });
    return { model, bundle };
  } catch (e) {
    for (const b of (arrays as BundleGpuArrays | null)?.buffers.values() ?? []) b.destroy();
    tower?.destroy();
    throw e;
  }
}

/** The Qwen2.5-VL vision transformer on the GPU behind the ChatVision interface (one submission per request). */
function qwen25VisionOnGpu(tower: Qwen25VisionGpu, prefix: string): ChatVision {
  let calls = 0;
  const cfg = tower.config;
  const gridOf = (image: ProcessedImage) => ({ t: image.gridThw[0], h: image.gridThw[1], w: image.gridThw[2] });
  return {
    kind: "qwen2_5_vl-webgpu",
    get calls() {
      return calls;
    },
    async encode(images) {
      calls += images.length;
      const plan = planQwen25Vision(cfg, images.map(gridOf), prefix);
      const pixels = new Float32Array(images.reduce((n, im) => n + im.pixelValues.length, 0));
      let o = 0;
      for (const im of images) {
        pixels.set(im.pixelValues, o);
        o += im.pixelValues.length;
      }
      return tower.run(plan, pixels);
    },
    grid: (image) => llmGrid(gridOf(image), cfg.spatialMergeSize),
  };
}
