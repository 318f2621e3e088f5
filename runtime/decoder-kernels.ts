// Picks the attention kernels a chat model decodes with: the WebGPU kernels when the runtime has an adapter, else
// null (the CPU reference decoder), and the per-session choice between the kernels and the CPU reference.

import { createGpuBackend, GpuBackend, type MlaBackend } from "../kernels/backend.ts";
import { WebGpuUnavailableError } from "../kernels/errors.ts";
import type { GpuContext, GpuContextOptions } from "../kernels/gpu-context.ts";
import type { CacheLayout } from "../kernels/geometry.ts";
import type { CodecParams } from "../format/codec/types.ts";
import { kernelCacheLayout, kernelUnsupportedReason } from "./mla/kernel-attention.ts";
import type { MlaModelWeights } from "./mla/weights.ts";

/** The decoder kernels' backend type, re-exported so the SDK names it without importing kernels/. */
export type { MlaBackend };

/** Which decoder a session runs: the kernels (WebGPU or their CPU fallback) or the f64 CPU reference, and why. */
export interface DecoderChoice {
  /** Where attention runs. */
  readonly kind: "webgpu" | "cpu";
  /** "engine": the whole model on WebGPU (runtime/gpu/engine.ts); "kernels": attention on kernels/ (MlaBackend); "reference": runtime/mla/attention.ts. */
  readonly path: "engine" | "kernels" | "reference";
  /** Why the kernels were not used (null when they were). */
  readonly fallback: string | null;
}

/** The WebGPU kernels (`navigator.gpu`, or `options.gpu` in Node), or null when there is no adapter. */
export async function createDecoderKernels(options: GpuContextOptions = {}): Promise<MlaBackend | null> {
  try {
    return await createGpuBackend(options);
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) return null;
    throw e;
  }
}

/** The WebGPU device context of the kernels (null for their CPU fallback or none): what the GPU engine runs on too. */
export function gpuContextOf(kernels: MlaBackend | null): GpuContext | null {
  return kernels instanceof GpuBackend ? kernels.ctx : null;
}

/** What a session of `model` with `codec` decodes with. */
export function chooseDecoder(kernels: MlaBackend | null, model: MlaModelWeights, codec: CodecParams, raw: boolean, chunkTokens: number): DecoderChoice {
  if (kernels === null) return { kind: "cpu", path: "reference", fallback: "no attention kernels (no WebGPU adapter)" };
  const why = kernelUnsupportedReason(model, codec, raw, chunkTokens);
  if (why !== null) return { kind: "cpu", path: "reference", fallback: why };
  return { kind: kernels.kind, path: "kernels", fallback: null };
}

const layouts = new WeakMap<MlaBackend, Map<string, CacheLayout>>();

/** One layout object per (kernels, model geometry, codec, chunk): the kernels keep one runner (pipelines, scratch) per layout. */
export function sharedCacheLayout(kernels: MlaBackend, model: MlaModelWeights, codec: CodecParams, chunkTokens: number): CacheLayout {
  let byKey = layouts.get(kernels);
  if (!byKey) {
    byKey = new Map();
    layouts.set(kernels, byKey);
  }
  const c = model.config;
  const key = JSON.stringify([c.numHeads, c.numKvHeads, c.headDim, model.ropeDims, model.dKv, model.latentSpaces, codec.bits, codec.group, codec.axis, codec.axis === "channel" ? chunkTokens : 0, codec.rope]);
  let layout = byKey.get(key);
  if (!layout) {
    layout = kernelCacheLayout(model, codec, chunkTokens);
    byKey.set(key, layout);
  }
  return layout;
}
