// The GPU engine behind chat sessions: a chat model's weights go to the GPU once (quantized at upload, or already
// packed in a bundle) and every session of the model creates its own GpuEngine — its cache, scratch and block plans —
// over those shared weights. A session whose codec the engine cannot run (raw storage, a layout the attention kernels
// lack) falls back to the attention kernels or the CPU reference decoder (client/chat/chat-session.ts).

import type { GpuContext } from "../../kernels/gpu-context.ts";
import type { ChatModel } from "../chat-model.ts";
import { RuntimeError } from "../errors.ts";
import type { MlaModelWeights } from "../mla/weights.ts";
import type { EngineModelShape } from "./bundle-weights.ts";
import { engineUnsupportedReason, GpuEngine, type ModelEngine } from "./engine.ts";
import { uploadEngineWeights, type EngineWeightFormat, type EngineWeights } from "./engine-weights.ts";

/** The engine factory over weights already on the GPU (`model`: host weights or only their shape). */
export function modelEngine(ctx: GpuContext, model: MlaModelWeights | EngineModelShape, weights: EngineWeights): ModelEngine {
  return {
    kind: "webgpu",
    weightBytes: weights.bytes,
    unsupportedReason: (codec, raw, chunkTokens) => engineUnsupportedReason(model, codec, raw, chunkTokens),
    create: (options) => GpuEngine.create(ctx, model, { ...options, weights }),
  };
}

export interface WithGpuEngineOptions {
  /**
   * Layout of the linear weights on the GPU when they are uploaded from the host model: int4 block 32 by default (the
   * layout of ONNX Runtime's MatMulNBits, as in a bundle), or int8, f16, f32.
   */
  readonly weightFormat?: EngineWeightFormat;
  /** Weights already on the GPU (e.g. `loadEngineBundle`): nothing is uploaded. */
  readonly weights?: EngineWeights;
}

/**
 * The same chat model, its sessions decoding on the GPU engine over `ctx`; `ctx: null` takes the engine away (the
 * kernels or the CPU reference decode).
 */
export function withGpuEngine<M extends ChatModel>(chat: M, ctx: GpuContext | null, options: WithGpuEngineOptions = {}): M {
  if (ctx === null) {
    if (chat.weights === null) throw new RuntimeError("bad_model", "this model lives only on the GPU (no host weights): it cannot drop its engine");
    return { ...chat, engine: null };
  }
  if (options.weights === undefined && chat.weights === null) throw new RuntimeError("bad_model", "no host weights to upload: pass options.weights");
  const weights = options.weights ?? uploadEngineWeights(ctx, chat.weights!, options.weightFormat ?? { bits: 4, block: 32 });
  return { ...chat, engine: modelEngine(ctx, chat.weights ?? chat.shape, weights) };
}
