// Public API of the mla-edge client SDK: the HTTP client and its errors, chat sessions over the edge-stored latent
// cache, the model runtime pieces (loading, vision encoders, images), and the wire types.

export { MlaEdge, MlaEdge as default, createClient, type ClientOptions, type Fetch, type RequestOptions } from "./client.ts";
export * from "./core/error.ts";
export { APIPromise } from "./core/api-promise.ts";
export { Stream } from "./core/stream.ts";
export { Sessions, type SessionCreateParams, type SessionOpenParams } from "./resources/sessions.ts";
export { StoreUsage } from "./resources/store-usage.ts";
export { StoreSessions, encodeAppendBody, parseRestoreStream, splitAppendBody, STORE_PART_LIMITS, type AppendBody, type PartLimits, type RestoreQuery, type SessionAuth, type TruncateResult } from "./resources/store-sessions.ts";
export { ChatSession, type ChatCompletion, type ChatEvent, type ChatParams, type FinishReason, type RestoreStats } from "./chat/chat-session.ts";
export {
  Completions,
  InvalidRequestError,
  DEFAULT_MAX_TOKENS,
  DEFAULT_SESSION_CODEC,
  // OpenAI's `ChatCompletion` (the name ChatCompletion stays the session API's turn result)
  type ChatCompletion as ChatCompletionResponse,
  type ChatCompletionChunk,
  type ChatCompletionChunkChoice,
  type ChatCompletionContentPart,
  type ChatCompletionContentPartImage,
  type ChatCompletionContentPartPixels,
  type ChatCompletionContentPartText,
  type ChatCompletionCreateParams,
  type ChatCompletionCreateParamsNonStreaming,
  type ChatCompletionCreateParamsStreaming,
  type ChatCompletionMessage,
  type ChatCompletionMessageParam,
  type ChatCompletionRequestOptions,
  type CompletionUsage,
  type ImageBytesDecoder,
  type InvalidRequestCode,
  type MlaEdgeCompletionInfo,
  type MlaEdgeRequest,
} from "./chat/completions.ts";
export { SessionPool } from "./chat/session-pool.ts";
export type { ChatEngine } from "./chat/completions.ts";
export { WorkerEngine, errorFromWire } from "./engine/worker-engine.ts";
export { serveChatEngine, errorToWire, type EngineClient } from "./engine/worker-host.ts";
export type { EngineReply, EngineRequest, MessageEndpoint, WireError } from "./engine/protocol.ts";
export { StopScanner, type StopScan } from "../runtime/stop-sequences.ts";
export {
  chatFormatOf,
  createChatModel,
  loadChatModel,
  qwen25Vision,
  toyTowerVision,
  withDecoderKernels,
  type ChatFormat,
  type ChatModel,
  type HostChatModel,
  type ChatModelFiles,
  type ChatModelParts,
  type ChatVision,
} from "../runtime/chat-model.ts";
export { ChatInputProcessor, type ImageLoader, type InputContentPart, type InputMessage, type ModelInputs } from "../runtime/inputs/processor.ts";
export { decodeBrowserImage, type BrowserImageSource } from "../runtime/inputs/image-decode.ts";
export { createDecoderKernels, chooseDecoder, gpuContextOf, type DecoderChoice, type MlaBackend } from "../runtime/decoder-kernels.ts";
export { modelEngine, withGpuEngine, type WithGpuEngineOptions } from "../runtime/gpu/chat-engine.ts";
export type { EngineMemory, EngineSampling, GpuEngine, ModelEngine } from "../runtime/gpu/engine.ts";
export { OrtVisionEncoder, TypeScriptVisionEncoder, type OrtNamespace, type VisionEncoder } from "../runtime/vision/vision-encoder.ts";
export { imageToPatchBytes, patchBytesToImage, type PatchGeometry } from "../runtime/inputs/image.ts";
export { RuntimeError, type RuntimeErrorCode } from "../runtime/errors.ts";
export { SessionCache, CacheAssembler, SnapshotSink, checkSessionCodec, type PackedChunk, type RestoreSink } from "../runtime/session-cache.ts";
export type { SessionStore, RestoreEvent, TurnUpload } from "../runtime/cache-store.ts";
export { TurnReporter, type PostReports, type TelemetryCounters, type TelemetryOptions } from "./telemetry/turn-reporter.ts";
export type { ClientReportBatch, ClientTurnReport, DeviceKvMemory, RestoreTiming } from "../format/telemetry/client-report.ts";
export type { ChatMessage, ChatUsage, ContentPart, ImagePart, RgbImage, TextPart } from "../runtime/inputs/messages.ts";
export type { CodecParams } from "../format/codec/types.ts";
export type { AppendResult, Manifest, RestoreHeader, SessionCreated, TenantUsage } from "../format/wire/messages.ts";
