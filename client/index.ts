// Public API of the mla-edge client SDK: the HTTP client and its errors, chat sessions over the edge-stored latent
// cache, the model runtime pieces (loading, vision encoders, images), and the wire types.

export { MlaEdge, MlaEdge as default, createClient, type ClientOptions, type Fetch, type RequestOptions } from "./client.ts";
export * from "./core/error.ts";
export { APIPromise } from "./core/api-promise.ts";
export { Stream } from "./core/stream.ts";
export { Sessions, type SessionCreateParams, type SessionOpenParams } from "./resources/sessions.ts";
export { StoreUsage } from "./resources/store-usage.ts";
export { StoreSessions, encodeAppendBody, parseRestoreStream, splitAppendBody, STORE_PART_LIMITS, type AppendBody, type PartLimits, type RestoreQuery, type SessionAuth, type TruncateResult } from "./resources/store-sessions.ts";
export { ChatSession, type ChatCompletion, type ChatEvent, type ChatParams, type RestoreStats } from "./chat/chat-session.ts";
export { createChatModel, loadChatModel, withDecoderKernels, type ChatModel, type ChatModelFiles, type ChatModelParts } from "../runtime/chat-model.ts";
export { createDecoderKernels, chooseDecoder, type DecoderChoice, type MlaBackend } from "../runtime/decoder-kernels.ts";
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
