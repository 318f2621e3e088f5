// JSON messages of the edge-store API (docs/api.md), shared by the Worker and the client SDK. Requests are validated by
// the Worker; responses are produced with `satisfies` against these types.
import type { CacheSpec } from "../cache-spec.ts";
import type { CodecParams } from "../codec/types.ts";

/** Which model conversion a session's latents come from: both go into every chunk key. */
export interface ModelRef {
  /** e.g. "Qwen/Qwen2.5-VL-7B-Instruct". */
  readonly id: string;
  /** Identifies the conversion (rank file, d_kv, method version), e.g. a hash of the converted weights. */
  readonly conversion: string;
}

/** `POST /v1/sessions` body. */
export interface CreateSessionRequest {
  readonly spec: CacheSpec;
  readonly model: ModelRef;
  readonly codec: CodecParams;
  /** Tokens per sealed chunk C (default 64). */
  readonly chunkTokens?: number;
  /** Idle lifetime in seconds (default 7 days), extended on every access. */
  readonly ttlSeconds?: number;
  /**
   * `quantized` (default): filled slots are sealed with the codec, only the last partial slot stays raw float32.
   * `raw`: every chunk stays float32 (lossless; e.g. an uncompressed baseline).
   */
  readonly storage?: SessionStorage;
}

export type SessionStorage = "quantized" | "raw";

/** `POST /v1/sessions` and fork responses. */
export interface SessionCreated {
  readonly id: string;
  /** Capability token for this session (read + write), `Authorization: Bearer <token>`. */
  readonly token: string;
  /** Token expiry, ms since the epoch. */
  readonly tokenExpiresAt: number;
  /** Session expiry, ms since the epoch (extended on access). */
  readonly expiresAt: number;
  readonly specHash: string;
}

/** A media item's token span inside a turn. `hash` is the client's SHA-256 of the media bytes (64 hex digits). */
export interface MediaSpan {
  readonly hash: string;
  /** Session index of the first token of the span. */
  readonly start: number;
  readonly length: number;
  /** Index inside the item of the span's first token (non-zero when an item is split across turns); default 0. */
  readonly offset?: number;
}

/** First frame of an append (frame type 1). Arrays are per token of the turn. */
export interface AppendControl {
  /** Sequence number the new turn gets (= manifest.head + 1); a different head gives 409 turn_conflict. */
  readonly expectedSeq: number;
  readonly tokenIds: readonly number[];
  /** 0 text, 1 image (format/cache-spec.ts Modality). */
  readonly modality: readonly number[];
  /** M-RoPE positions [t, h, w] per token, flattened (3 per token). */
  readonly positions: readonly number[];
  readonly media?: readonly MediaSpan[];
  /**
   * Turns of any length (docs/api.md): false stages this request's tokens as a part of the turn, invisible to readers
   * until a request with `final` true (the default) commits the staged parts and its own as one turn. A non-final part
   * must end at a slot boundary.
   */
  readonly final?: boolean;
  /** The staged turn this part continues (`AppendStaged.stage` of the previous part); absent on a turn's first request. */
  readonly stage?: string;
}

/** Answer to a non-final part (HTTP 202): the turn is staged, not visible; continue it with `stage`. */
export interface AppendStaged {
  readonly staged: true;
  /** Pass as `stage` in the next part's control. */
  readonly stage: string;
  readonly seq: number;
  /** First token of the staged turn and the tokens staged so far (all parts). */
  readonly tokenStart: number;
  readonly tokenCount: number;
  /** Chunk bytes staged so far. */
  readonly bytes: number;
  /** The staged parts are dropped (and their chunks reaped) unless the next part arrives before this (ms since the epoch). */
  readonly leaseExpiresAt: number;
}

/** Append response (HTTP 201 body, or the WebSocket text message after a turn commits). */
export interface AppendResult {
  readonly seq: number;
  readonly tokenStart: number;
  readonly tokenCount: number;
  /** Chunks of the turn that created a new row. */
  readonly chunksStored: number;
  /** Chunks of the turn that another holder of this tenant had stored already (dedupe). */
  readonly chunksReused: number;
  readonly bytes: number;
  readonly nextPosition: number;
}

export interface TurnSummary {
  readonly seq: number;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly chunks: number;
  /** Bytes of the chunks this turn uploaded. */
  readonly bytesStored: number;
  /** Bytes the same tokens take as bf16 GQA K/V (2 · layers · kvHeads · headDim · 2 B per token). */
  readonly bytesUncompressed: number;
  readonly nextPosition: number;
  readonly createdAt: number;
}

/** `GET /v1/sessions/:id`. */
export interface Manifest {
  readonly id: string;
  readonly spec: CacheSpec;
  readonly specHash: string;
  readonly model: ModelRef;
  readonly codec: CodecParams;
  readonly storage: SessionStorage;
  readonly chunkTokens: number;
  /** Seq of the last turn (0 when empty). */
  readonly head: number;
  readonly tokens: number;
  readonly turns: readonly TurnSummary[];
  /** Bytes of the chunks a full restore returns. */
  readonly bytesStored: number;
  /** Bytes of every turn's uploads, superseded tails included. */
  readonly bytesUploaded: number;
  readonly bytesUncompressed: number;
  /** Next M-RoPE position (max position + 1) and the rope delta (nextPosition − tokens) for decoding. */
  readonly nextPosition: number;
  readonly ropeDelta: number;
  readonly parent: { readonly id: string; readonly seq: number } | null;
  readonly createdAt: number;
  readonly expiresAt: number;
}

/** One chunk in a restore stream's header, in stream order. */
export interface RestoreChunkInfo {
  readonly slot: number;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly layerStart: number;
  readonly layerCount: number;
  readonly sealed: boolean;
  readonly bytes: number;
  readonly key: string;
}

/** First frame (type 1) of `GET /v1/sessions/:id/chunks`. */
export interface RestoreHeader {
  readonly head: number;
  readonly tokens: number;
  readonly from: number;
  readonly to: number;
  readonly layerStart: number;
  readonly layerEnd: number;
  readonly chunks: readonly RestoreChunkInfo[];
}

export interface ForkRequest {
  /** Keep turns 1..atSeq of the parent. */
  readonly atSeq: number;
  readonly ttlSeconds?: number;
}

export interface TruncateRequest {
  /** Keep turns 1..toSeq (0 empties the session). */
  readonly toSeq: number;
}

/** `POST /v1/sessions/:id/tokens`: mint another capability token for a session (tenant key required). */
export interface MintTokenRequest {
  readonly scopes?: readonly TokenScope[];
  readonly ttlSeconds?: number;
}

/** `GET /v1/usage` (tenant key): what the tenant's chunk rows hold now, and its storage quota. */
export interface TenantUsage {
  readonly tenant: string;
  /** Bytes of the tenant's chunk rows (rows shared by forks and dedupe count once). */
  readonly bytes: number;
  /** The quota that applies (TENANT_QUOTAS), or null when unlimited. */
  readonly quotaBytes: number | null;
}

export type TokenScope = "read" | "write";

export type ApiErrorCode =
  | "bad_request"
  | "unauthorized"
  | "token_expired"
  | "forbidden"
  | "not_found"
  | "turn_conflict"
  | "too_large"
  | "invalid_chunk"
  | "corrupt_chunk"
  | "unsupported_format"
  | "internal";

/** Every error response and error frame. `reason` refines `code` (e.g. a ChunkError code for invalid_chunk). */
export interface ErrorBody {
  readonly error: { readonly code: ApiErrorCode; readonly message: string; readonly reason?: string };
}
