// The engine's weights straight from a browser bundle (docs/bundle.md): every tensor array streams from its shard
// windows into its own GPU buffer (queue.writeBuffer as the window lands; no CPU copy of the model), and the engine binds
// the MatMulNBits bytes as they are — the same bytes the pack wrote and ONNX Runtime's MatMulNBits reads. Only the small
// integer tables (the kept RoPE pairs) are kept on the host as well.

import { BundleError, type BundleManifest, type BundleTensorEntry } from "../../checkpoint/bundle/manifest.ts";
import { parseModelConfig, type TextModelConfig } from "../../checkpoint/config.ts";
import { parseMlaConfig } from "../../checkpoint/mla-config.ts";
import { detectTensorNaming, layerTensorNames, mlaLayerTensorNames } from "../../checkpoint/families/index.ts";
import { BufferUsage } from "../../kernels/gpu-flags.ts";
import type { GpuContext } from "../../kernels/gpu-context.ts";
import type { GpuWeights, SplitGpuWeights, WeightFormat } from "../../kernels/matmul-nbits.ts";
import { loadBundle, tensorArrays, tensorRouterSink, type LoadBundleOptions, type LoadedBundle } from "../loader/bundle-loader.ts";
import { EngineWeightsError, type EngineLayerWeights, type EngineWeights } from "./engine-weights.ts";

/** What the engine needs to know of the model besides its weights (an MlaModelWeights also satisfies it). */
export interface EngineModelShape {
  readonly config: TextModelConfig;
  readonly ropeDims: number;
  readonly dKv: number;
  readonly latentSpaces: 1 | 2;
}

export function bundleModelShape(manifest: BundleManifest): EngineModelShape {
  const config = parseModelConfig(manifest.config, "manifest.json config");
  const info = parseMlaConfig(manifest.config, "manifest.json config");
  const names = manifest.tensors.map((t) => t.name);
  const first = mlaLayerTensorNames(detectTensorNaming(names), 0);
  const latentSpaces: 1 | 2 = info.latentSpaces ?? (names.includes(first.image.down) ? 2 : 1);
  return { config, ropeDims: info.ropeDims, dKv: info.dKv, latentSpaces };
}

/** GPU buffers of every tensor array, filled by a ShardSink, with the small i32 tables also kept on the host. */
export interface BundleGpuArrays {
  readonly sink: ReturnType<typeof tensorRouterSink>;
  readonly buffers: ReadonlyMap<string, GPUBuffer>;
  readonly hostInts: ReadonlyMap<string, Int32Array>;
  readonly bytes: number;
}

export function bundleGpuArrays(ctx: GpuContext, manifest: BundleManifest): BundleGpuArrays {
  const buffers = new Map<string, GPUBuffer>();
  const hostInts = new Map<string, Int32Array>();
  let bytes = 0;
  for (const t of manifest.tensors) {
    for (const [array, a] of tensorArrays(t)) {
      const size = Math.max(16, Math.ceil((a.rows * a.rowBytes) / 16) * 16);
      bytes += size;
      buffers.set(`${t.name}:${array}`, ctx.device.createBuffer({ size, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC, label: `${t.name}:${array}` }));
    }
    if (t.kind === "plain" && t.dtype === "i32") hostInts.set(t.name, new Int32Array(t.data.rows * (t.data.rowBytes / 4)));
  }
  const sink = tensorRouterSink(manifest, (s) => {
    ctx.device.queue.writeBuffer(buffers.get(`${s.tensor.name}:${s.array}`)!, s.arrayOffset, s.bytes);
    const host = hostInts.get(s.tensor.name);
    if (host) {
      const n = Math.min(s.bytes.byteLength, host.byteLength - s.arrayOffset);
      new Uint8Array(host.buffer).set(s.bytes.subarray(0, n), s.arrayOffset);
    }
  });
  return { sink, buffers, hostInts, bytes };
}

/**
 * The engine's view of a loaded bundle's arrays (after every shard went through `arrays.sink`): bindings of the stored
 * buffers as they are; only the q and k_rope biases are copied (on the GPU) into one buffer per layer.
 */
export interface BundleEngineWeightsOptions {
  /**
   * Bytes one binding may hold (default: the device's maxStorageBufferBindingSize). The embedding table and LM head
   * past it are copied on the GPU into row ranges that fit (their whole buffers freed), as a host-quantized model's are
   * uploaded split.
   */
  readonly maxBindingBytes?: number;
}

export function bundleEngineWeights(ctx: GpuContext, manifest: BundleManifest, arrays: BundleGpuArrays, options: BundleEngineWeightsOptions = {}): EngineWeights {
  const shape = bundleModelShape(manifest);
  const c = shape.config;
  const names = manifest.tensors.map((t) => t.name);
  const naming = detectTensorNaming(names);
  const byName = new Map(manifest.tensors.map((t) => [t.name, t]));
  const entry = (name: string): BundleTensorEntry => {
    const t = byName.get(manifest.aliases[name] ?? name);
    if (!t) throw new BundleError("missing_tensor", `the bundle has no tensor ${name}`);
    return t;
  };
  const buf = (t: BundleTensorEntry, array: string) => arrays.buffers.get(`${t.name}:${array}`)!;
  const linear = (name: string, n: number, k: number): GpuWeights => {
    const t = entry(name);
    let format: WeightFormat;
    let buffers: GPUBuffer[];
    if (t.kind === "matmul_nbits") {
      format = { kind: "nbits", bits: t.bits, block: t.block, zeroPoints: t.zeroPoints !== null };
      buffers = [buf(t, "b"), buf(t, "scales"), ...(t.zeroPoints ? [buf(t, "zeroPoints")] : [])];
    } else if (t.dtype === "f32" || t.dtype === "f16") {
      format = { kind: t.dtype };
      buffers = [buf(t, "data")];
    } else {
      throw new EngineWeightsError("bad_format", `${name} is stored as ${t.dtype}, not a weight layout`);
    }
    const [tn, tk] = t.shape;
    if (tn !== n || tk !== k) throw new EngineWeightsError("bad_format", `${name} is [${t.shape.join(", ")}], the model needs [${n}, ${k}]`);
    return { format, n, k, buffers, bytes: buffers.reduce((s, b) => s + b.size, 0), destroy: () => undefined };
  };
  const vector = (name: string, length: number, optional = false): GPUBuffer | null => {
    const t = manifest.aliases[name] ?? name;
    const e = byName.get(t);
    if (!e) {
      if (optional) return null;
      throw new BundleError("missing_tensor", `the bundle has no tensor ${name}`);
    }
    if (e.kind !== "plain" || e.dtype !== "f32") throw new EngineWeightsError("bad_format", `${name} is not f32 (pack with --norms f32: the engine reads f32 norms and biases)`);
    if (e.shape.reduce((a, b) => a * b, 1) !== length) throw new EngineWeightsError("bad_format", `${name} has shape [${e.shape.join(", ")}], expected ${length} values`);
    return buf(e, "data");
  };
  const d = c.hiddenSize;
  const nh = c.numHeads;
  const nkv = c.numKvHeads;
  const dh = c.headDim;
  const r = shape.ropeDims;
  const D = shape.dKv * nkv;
  const I = c.intermediateSize;
  const projBiases: GPUBuffer[] = [];
  const enc = ctx.device.createCommandEncoder({ label: "bundle-proj-bias" });
  const layers = Array.from({ length: c.numLayers }, (_, l): EngineLayerWeights => {
    const t = layerTensorNames(naming, l);
    const m = mlaLayerTensorNames(naming, l);
    const pairsFlat = arrays.hostInts.get(manifest.aliases[m.ropePairs] ?? m.ropePairs);
    if (!pairsFlat || pairsFlat.length !== (nkv * r) / 2) throw new BundleError("missing_tensor", `layer ${l}: no ${m.ropePairs} of ${nkv} × ${r / 2} pairs`);
    const qBias = vector(m.qBias, nh * dh, true);
    const kRBias = vector(m.kRBias, nkv * r, true);
    let projBias: GPUBuffer | null = null;
    if (qBias || kRBias) {
      // The projections write one row [q | k_rope | …] and read bias[yOffset + n]: q and k_rope biases back to back.
      projBias = ctx.storageBuffer(`L${l}.proj_bias`, (nh * dh + nkv * r) * 4);
      projBiases.push(projBias);
      if (qBias) enc.copyBufferToBuffer(qBias, 0, projBias, 0, nh * dh * 4);
      if (kRBias) enc.copyBufferToBuffer(kRBias, 0, projBias, nh * dh * 4, nkv * r * 4);
    }
    const spaceNames = shape.latentSpaces === 1 ? [m.shared] : [m.text, m.image];
    return {
      inputNorm: vector(t.inputNorm, d)!,
      postNorm: vector(t.postNorm, d)!,
      qProj: linear(m.qWeight, nh * dh, d),
      kRProj: linear(m.kRWeight, nkv * r, d),
      projBias,
      spaces: spaceNames.map((sn) => ({
        downKv: linear(sn.down, D, d),
        upK: linear(sn.upK, nkv * (dh - r), D),
        upKBias: vector(sn.upKBias, nkv * (dh - r), true),
        upV: linear(sn.upV, nkv * dh, D),
        upVBias: vector(sn.upVBias, nkv * dh, true),
      })),
      oProj: linear(m.oWeight, d, nh * dh),
      gate: linear(t.gate, I, d),
      up: linear(t.up, I, d),
      down: linear(t.down, d, I),
      keptPairs: Array.from({ length: nkv }, (_, g) => Array.from(pairsFlat.subarray((g * r) / 2, ((g + 1) * r) / 2))),
    };
  });
  // Embedding and LM head (tied: one tensor, split once): bound whole, or as row ranges past the binding limit.
  const limit = options.maxBindingBytes ?? ctx.device.limits.maxStorageBufferBindingSize;
  const partBuffers: GPUBuffer[] = [];
  const released: GPUBuffer[] = [];
  const splits = new Map<string, SplitGpuWeights>();
  const rowRanges = (name: string): SplitGpuWeights => {
    const t = entry(name);
    const known = splits.get(t.name);
    if (known) return known;
    const whole = linear(name, c.vocabSize, d);
    const stored = tensorArrays(t);
    let split: SplitGpuWeights;
    if (stored.every(([, a]) => a.rows * a.rowBytes <= limit)) {
      split = { n: whole.n, k: whole.k, parts: [{ rowStart: 0, weights: whole }], bytes: whole.bytes, destroy: () => undefined };
    } else {
      // rows per part: a multiple of 4, so every copy offset is 4-byte aligned
      const widest = Math.max(...stored.map(([, a]) => a.rowBytes));
      const rows = Math.floor(limit / widest / 4) * 4;
      if (rows < 4) throw new EngineWeightsError("bad_format", `${name}: four rows (${4 * widest} bytes) pass the binding limit of ${limit} bytes`);
      const parts: Array<{ rowStart: number; weights: GpuWeights }> = [];
      for (let r0 = 0; r0 < whole.n; r0 += rows) {
        const count = Math.min(rows, whole.n - r0);
        const buffers = stored.map(([array, a]) => {
          const size = count * a.rowBytes;
          const dst = ctx.device.createBuffer({ label: `${t.name}:${array}[${r0}]`, size: Math.max(16, Math.ceil(size / 16) * 16), usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC });
          partBuffers.push(dst);
          // the source is padded to 16 bytes, so rounding the last part's copy up to 4 stays inside it
          enc.copyBufferToBuffer(buf(t, array), r0 * a.rowBytes, dst, 0, Math.ceil(size / 4) * 4);
          return dst;
        });
        parts.push({ rowStart: r0, weights: { format: whole.format, n: count, k: whole.k, buffers, bytes: buffers.reduce((s, b) => s + b.size, 0), destroy: () => undefined } });
      }
      released.push(...whole.buffers);
      split = { n: whole.n, k: whole.k, parts, bytes: parts.reduce((s, p) => s + p.weights.bytes, 0), destroy: () => undefined };
    }
    splits.set(t.name, split);
    return split;
  };
  const embed = rowRanges(naming.embedTokens);
  const lmHead = rowRanges(c.tieWordEmbeddings && !byName.has(naming.lmHead) ? naming.embedTokens : naming.lmHead);
  ctx.device.queue.submit([enc.finish()]);
  // the whole copies of split tensors go once the row copies are done (destroy waits for submitted work)
  for (const b of released) b.destroy();
  const releasedBytes = released.reduce((s, b) => s + b.size, 0);
  return {
    embed,
    finalNorm: vector(naming.finalNorm, d)!,
    lmHead,
    layers,
    bytes: arrays.bytes - releasedBytes + partBuffers.reduce((s, b) => s + b.size, 0) + projBiases.reduce((s, b) => s + b.size, 0),
    destroy: () => {
      for (const b of arrays.buffers.values()) b.destroy();
      partBuffers.forEach((b) => b.destroy());
      projBiases.forEach((b) => b.destroy());
    },
  };
}

export interface EngineBundle {
  readonly manifest: BundleManifest;
  readonly shape: EngineModelShape;
  readonly weights: EngineWeights;
  readonly loaded: LoadedBundle;
}

/**
 * Loads the bundle at `baseUrl` into GPU buffers (loadBundle: hashes verified, progress, cache) and returns the
 * engine's weights and the model shape for `GpuEngine.create(ctx, shape, { weights, … })`.
 */
export async function loadEngineBundle(ctx: GpuContext, baseUrl: string, options: Omit<LoadBundleOptions, "sink"> & BundleEngineWeightsOptions = {}): Promise<EngineBundle> {
  // the GPU buffers are made from the manifest loadBundle fetches, before any shard arrives
  let arrays: BundleGpuArrays | null = null;
  let loaded: LoadedBundle;
  try {
    loaded = await loadBundle(baseUrl, { ...options, sink: (manifest) => (arrays = bundleGpuArrays(ctx, manifest)).sink });
  } catch (e) {
    for (const b of (arrays as BundleGpuArrays | null)?.buffers.values() ?? []) b.destroy();
    throw e;
  }
  const weights = bundleEngineWeights(ctx, loaded.manifest, arrays!, options.maxBindingBytes === undefined ? {} : { maxBindingBytes: options.maxBindingBytes });
  return { manifest: loaded.manifest, shape: bundleModelShape(loaded.manifest), weights, loaded };
}
