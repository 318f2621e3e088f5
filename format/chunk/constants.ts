// Chunk wire-format constants shared by every reader and writer (docs/chunk-format.md).
import { CODEC_BITS } from "../codec/types.ts";

/** Version of the binary chunk layout; bumped on any incompatible change. */
export const FORMAT_VERSION = 1;

/** "MLAC" (MLA Chunk): the first four bytes of every chunk. */
export const CHUNK_MAGIC: readonly number[] = [0x4d, 0x4c, 0x41, 0x43];

/** Size of the fixed header (magic … byteLength), a multiple of 4 so the variable parts start aligned. */
export const FIXED_HEADER_BYTES = 80;

/** Every section starts on a 4-byte boundary so scales (u16) and raw floats (f32) can be viewed in place. */
export const SECTION_ALIGN = 4;

/** Trailing CRC-32C. */
export const CHECKSUM_BYTES = 4;

/**
 * Reader limits, checked before anything is allocated (CWE-770). A chunk is one DO row (≤ MAX_CHUNK_BYTES), and every
 * token costs at least 13 bytes (modality + positions), so no valid chunk reaches these counts.
 */
/** Tokens per chunk: 64× the default C; a real chunk of any cached model stays far below. */
export const MAX_CHUNK_TOKENS = 4096;
/** Layers of a model: 1024 is 8× the deepest open LMs (126 layers in Llama-3.1-405B). */
export const MAX_MODEL_LAYERS = 1024;
/** kvHeads, dKv, ropeDims each: the same bound validateCacheSpec applies to a spec (2^20). */
export const MAX_GEOMETRY_VALUE = 1 << 20;

/** Explicit wire numbers of the codec enums: the value is written into chunks, never derived from declaration order. */
export const WIRE_AXIS = { token: 0, channel: 1 } as const;
export const WIRE_ROPE = { fp16: 0, int8: 1, int4: 2 } as const;
/** Storage byte: 0 = raw float32 (the unsealed tail), 1 = sealed (quantized with the session codec). */
export const WIRE_STORAGE = { raw: 0, sealed: 1 } as const;
/** Latent code widths a chunk may declare. */
export const WIRE_BITS: readonly number[] = CODEC_BITS;
/** Latent group sizes a chunk may declare. */
export const WIRE_GROUPS: readonly number[] = [32, 64, 128];
/** Values per token per layer in the latent (kvHeads·dKv) or the rope keys (kvHeads·ropeDims): one such row raw is 4 MiB,
 * already above MAX_CHUNK_BYTES, and the bound keeps every size product below 2^53. */
export const MAX_ROW_WIDTH = 1 << 20;
