// OpenAI-style chat messages whose content mixes image and text parts, and the RGB image the runtime accepts.

/** Interleaved pixels, row-major: `channels` = 3 (RGB) or 4 (RGBA, e.g. a canvas ImageData; alpha is ignored). */
export interface RgbImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array | Uint8ClampedArray;
  readonly channels?: 3 | 4;
}

export interface ImagePart {
  readonly type: "image";
  readonly image: RgbImage;
}

export interface TextPart {
  readonly type: "text";
  readonly text: string;
}

export type ContentPart = ImagePart | TextPart;

export interface ChatMessage {
  readonly role: "user" | "assistant";
  readonly content: string | readonly ContentPart[];
}

/** Token accounting of one turn (OpenAI names; times in ms). */
export interface ChatUsage {
  /** New tokens this turn fed before generating: the message tokens (image tokens included). */
  readonly prompt_tokens: number;
  /** Tokens generated (the stop token included). */
  readonly completion_tokens: number;
  /** History tokens this session restored from the edge and did not recompute (0 when it never restored). */
  readonly cached_tokens: number;
  /** Time from the call to the first generated token. */
  readonly ttft_ms: number;
  /** Mean time per generated token after the first (0 with one token). */
  readonly tpot_ms: number;
  /** Bytes the edge stores for the whole session after this turn. */
  readonly kv_bytes: number;
  /** Bytes the same tokens take as the original model's bf16 K/V (2 · layers · kvHeads · headDim · 2 B per token). */
  readonly kv_bytes_uncompressed: number;
  /**
   * Bytes this session's KV cache holds allocated on its device after this turn: the kernels' GPU buffers (packed
   * codes at capacity + the f32 tail), or host memory for the CPU reference decoder (f32 rows).
   */
  readonly kv_device_bytes: number;
}
