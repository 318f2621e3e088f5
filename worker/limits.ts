// Limits of the edge store, each with the reason for its value (production limits: shared/docs/platform.md §11).
import { MAX_CHUNK_BYTES } from "../format/chunk/types.ts";
import { FrameType, type FrameLimits } from "../format/wire/frames.ts";

/**
 * MAX_APPEND_BODY_BYTES: Cloudflare's Free/Pro plan request cap (100 MB). MAX_TURN_TOKENS: tokens of one append request
 * (≈ 92 MB of Qwen2.5-VL-7B chunks at d_kv 64 int4). A longer turn is appended in parts (staged, committed by its last
 * part), up to MAX_STAGED_TURN_TOKENS. Shared with the SDK, which splits long turns: format/wire/limits.ts.
 */
export { MAX_APPEND_BODY_BYTES, MAX_STAGED_TURN_TOKENS, MAX_TURN_TOKENS } from "../format/wire/limits.ts";

/** Media spans per turn (a turn with more images than this is split by the client). */
export const MAX_MEDIA_PER_TURN = 256;

/** JSON bodies of control routes. */
export const MAX_JSON_BODY_BYTES = 64 * 1024;

/** Upload holds live this long: an append that has not committed by then is abandoned and its rows are reaped. */
export const UPLOAD_LEASE_MS = 15 * 60 * 1000;

/** Session idle lifetime: 7 days by default, extended on access. */
export const DEFAULT_TTL_SECONDS = 7 * 24 * 3600;
export const MAX_TTL_SECONDS = 90 * 24 * 3600;

/**
 * Bytes of one stored row: the DO row limit is 2 MB and MAX_CHUNK_BYTES leaves room for the row's other columns. A row
 * packs one or more chunks; a chunk alone never exceeds it (planChunkLayerRanges).
 */
export const MAX_ROW_BYTES = MAX_CHUNK_BYTES;

/** Tokens per sealed chunk a session may choose (the chunk format's own per-chunk bound). */
export const MAX_SESSION_CHUNK_TOKENS = 1024;

/**
 * Per-frame limits of append bodies. A control frame carries ≤ 8,192 tokens of ids/modality/positions (< 1 MiB of JSON);
 * a packed chunk is one DO row; proxy latents are float32 before packing, up to a WebSocket message (32 MiB).
 */
export const APPEND_FRAME_LIMITS: FrameLimits = {
  [FrameType.control]: 4 * 1024 * 1024,
  [FrameType.chunk]: MAX_CHUNK_BYTES,
  [FrameType.latents]: 32 * 1024 * 1024,
  [FrameType.error]: 0,
  // Chunk runs are what restores send; appends send one chunk per frame.
  [FrameType.chunks]: 0,
};
