// Types shared by the WASM codec wrapper and the TypeScript reference codec (docs/codec.md).
import { MlaError } from "../errors.ts";
import type { Crc32c } from "../hash/crc32c.ts";

/** Code width of a quantized block. 16 means fp16 (no scales): the rope policy `fp16` and nothing else. */
export type Bits = 8 | 4 | 2;
/** The codec's code widths: the one list every check, wire field and sweep reads (the compiler holds it equal to Bits). */
export const CODEC_BITS = [8, 4, 2] as const satisfies readonly Bits[];
type HoldsTrue<T extends true> = T;
/** Compiles only while CODEC_BITS lists every Bits. */
export type CodecBitsListEveryBits = HoldsTrue<[Exclude<Bits, (typeof CODEC_BITS)[number]>] extends [never] ? true : false>;
/** True for one of CODEC_BITS. */
export const isBits = (bits: unknown): bits is Bits => (CODEC_BITS as readonly unknown[]).includes(bits);
/** "8, 4 or 2": CODEC_BITS for error messages. */
export const CODEC_BITS_TEXT = `${CODEC_BITS.slice(0, -1).join(", ")} or ${CODEC_BITS[CODEC_BITS.length - 1]}`;
export type BlockBits = Bits | 16;

/** Grouping axis: groups of channels inside a row (`token`), or groups of rows inside a column (`channel`). */
export type Axis = "token" | "channel";

/** How the rotated rope keys are stored: they carry outliers, so they get their own policy. */
export type RopePolicy = "fp16" | "int8" | "int4";

/** Requested group sizes; the effective group of a block is min(group, extent). */
export type GroupSize = 32 | 64 | 128;

/** Codec parameters of a session: latent bits/group/axis plus the rope policy. */
export interface CodecParams {
  readonly bits: Bits;
  readonly group: GroupSize;
  readonly axis: Axis;
  readonly rope: RopePolicy;
}

/** One quantized rows×cols block in the packed layout of docs/codec.md. */
export interface QuantizedBlock {
  readonly rows: number;
  readonly cols: number;
  readonly bits: BlockBits;
  /** Effective group size (0 for fp16 blocks). */
  readonly group: number;
  readonly axis: Axis;
  /** Packed codes (or the fp16 values' little-endian bytes when bits = 16). */
  readonly codes: Uint8Array;
  /** fp16 bit patterns, [rows][cols/g] (token axis) or [rows/g][cols] (channel axis); empty when bits = 16. */
  readonly scales: Uint16Array;
  /** fp16 bit patterns, same layout as scales; empty when bits = 16. */
  readonly zeros: Uint16Array;
}

export type CodecErrorCode = "nonfinite" | "out_of_range" | "invalid_shape" | "invalid_params" | "wasm_unavailable";

/** Typed codec failure: the codec never returns a silently wrong array. */
export class CodecError extends MlaError<CodecErrorCode> {
  override readonly name = "CodecError";
  constructor(code: CodecErrorCode, message: string) {
    super(code, message);
  }
}

/** What both implementations (WASM and the TypeScript reference) provide. */
export interface Codec {
  readonly kind: "wasm-simd" | "wasm-scalar" | "reference";
  /** Quantizes a row-major rows×cols float32 block. */
  quantize(input: Float32Array, rows: number, cols: number, bits: Bits, group: GroupSize | number, axis: Axis): QuantizedBlock;
  /** fp16 block (round-to-nearest-even), for the `fp16` rope policy. */
  toFp16Block(input: Float32Array, rows: number, cols: number): QuantizedBlock;
  /** Dequantizes into `out` (allocated when absent) and returns it. */
  dequantize(block: QuantizedBlock, out?: Float32Array): Float32Array;
  /** Widens float16 or bfloat16 bit patterns to float32. */
  widen(input: Uint16Array, kind: "f16" | "bf16", out?: Float32Array): Float32Array;
  /** CRC-32C of `bytes` continuing from `previous`, equal to format/hash/crc32c.ts (the chunk checksum). */
  readonly crc32c: Crc32c;
}
