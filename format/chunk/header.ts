// The fixed 80-byte chunk header (docs/chunk-format.md, "Fixed header"): field offsets, writer and defensive reader.
// The reader checks in a fixed order — magic, version, enums, limits — before any length derived from it is used.
import type { Axis, Bits, GroupSize, RopePolicy } from "../codec/types.ts";
import {
  CHUNK_MAGIC,
  FIXED_HEADER_BYTES,
  FORMAT_VERSION,
  MAX_CHUNK_TOKENS,
  MAX_GEOMETRY_VALUE,
  MAX_MODEL_LAYERS,
  MAX_ROW_WIDTH,
  WIRE_AXIS,
  WIRE_BITS,
  WIRE_GROUPS,
  WIRE_ROPE,
  WIRE_STORAGE,
} from "./constants.ts";
import { MAX_CHUNK_BYTES, ChunkError, type ChunkCodec, type ChunkGeometry } from "./types.ts";

/** Byte offsets of the fixed header fields (all little-endian). */
export const HEADER_OFFSETS = {
  magic: 0,
  version: 4,
  storage: 6,
  bits: 7,
  axis: 8,
  rope: 9,
  group: 10,
  specHash: 12,
  modelLayers: 44,
  kvHeads: 48,
  dKv: 52,
  ropeDims: 56,
  tokenStart: 60,
  tokenCount: 64,
  layerStart: 68,
  layerCount: 72,
  byteLength: 76,
} as const;

/** The fixed header's values. */
export interface FixedHeader {
  readonly version: number;
  readonly codec: ChunkCodec;
  readonly specHash: Uint8Array;
  readonly geometry: ChunkGeometry;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly layerStart: number;
  readonly layerCount: number;
  readonly byteLength: number;
}

/** Writes the fixed header at offset 0 of `out` (which must be zero-filled). Values are assumed validated. */
export function writeFixedHeader(out: Uint8Array, h: FixedHeader): void {
  const v = new DataView(out.buffer, out.byteOffset, FIXED_HEADER_BYTES);
  const o = HEADER_OFFSETS;
  out.set(CHUNK_MAGIC, o.magic);
  v.setUint16(o.version, h.version, true);
  v.setUint8(o.storage, h.codec.sealed ? WIRE_STORAGE.sealed : WIRE_STORAGE.raw);
  v.setUint8(o.bits, h.codec.bits);
  v.setUint8(o.axis, WIRE_AXIS[h.codec.axis]);
  v.setUint8(o.rope, WIRE_ROPE[h.codec.rope]);
  v.setUint16(o.group, h.codec.group, true);
  out.set(h.specHash, o.specHash);
  v.setUint32(o.modelLayers, h.geometry.modelLayers, true);
  v.setUint32(o.kvHeads, h.geometry.kvHeads, true);
  v.setUint32(o.dKv, h.geometry.dKv, true);
  v.setUint32(o.ropeDims, h.geometry.ropeDims, true);
  v.setUint32(o.tokenStart, h.tokenStart, true);
  v.setUint32(o.tokenCount, h.tokenCount, true);
  v.setUint32(o.layerStart, h.layerStart, true);
  v.setUint32(o.layerCount, h.layerCount, true);
  v.setUint32(o.byteLength, h.byteLength, true);
}

/**
 * Reads and checks the fixed header: magic, then version, then enum values, then limits (before anything sized by the
 * header is touched). Does not check the declared byteLength against the layout; the caller does that.
 */
export function readFixedHeader(bytes: Uint8Array): FixedHeader {
  const o = HEADER_OFFSETS;
  const magicAvailable = Math.min(bytes.length, CHUNK_MAGIC.length);
  for (let i = 0; i < magicAvailable; i++) {
    if (bytes[i] !== CHUNK_MAGIC[i]) {
      throw new ChunkError("bad_magic", `not a chunk: byte ${i} is 0x${hex2(bytes[i])}, expected "MLAC"`);
    }
  }
  if (bytes.length < o.version + 2) {
    throw new ChunkError("truncated", `chunk of ${bytes.length} bytes ends before its version field`);
  }
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const version = v.getUint16(o.version, true);
  if (version !== FORMAT_VERSION) {
    throw new ChunkError("unsupported_version", `chunk format version ${version} is not supported (this reader reads ${FORMAT_VERSION})`);
  }
  if (bytes.length < FIXED_HEADER_BYTES) {
    throw new ChunkError("truncated", `chunk of ${bytes.length} bytes ends inside its ${FIXED_HEADER_BYTES}-byte header`);
  }
  const codec = readCodec(v);
  const geometry: ChunkGeometry = {
    modelLayers: v.getUint32(o.modelLayers, true),
    kvHeads: v.getUint32(o.kvHeads, true),
    dKv: v.getUint32(o.dKv, true),
    ropeDims: v.getUint32(o.ropeDims, true),
  };
  const header: FixedHeader = {
    version,
    codec,
    specHash: bytes.slice(o.specHash, o.specHash + 32),
    geometry,
    tokenStart: v.getUint32(o.tokenStart, true),
    tokenCount: v.getUint32(o.tokenCount, true),
    layerStart: v.getUint32(o.layerStart, true),
    layerCount: v.getUint32(o.layerCount, true),
    byteLength: v.getUint32(o.byteLength, true),
  };
  checkHeaderLimits(header);
  return header;
}

function readCodec(v: DataView): ChunkCodec {
  const o = HEADER_OFFSETS;
  const storage = v.getUint8(o.storage);
  if (storage !== WIRE_STORAGE.raw && storage !== WIRE_STORAGE.sealed) {
    throw new ChunkError("invalid_header", `storage byte ${storage} is neither 0 (raw) nor 1 (sealed)`);
  }
  const bits = v.getUint8(o.bits);
  if (!WIRE_BITS.includes(bits)) throw new ChunkError("invalid_header", `latent bits ${bits} is not one of ${WIRE_BITS.join(", ")}`);
  const axis = enumName(WIRE_AXIS, v.getUint8(o.axis), "axis");
  const rope = enumName(WIRE_ROPE, v.getUint8(o.rope), "rope policy");
  const group = v.getUint16(o.group, true);
  if (!WIRE_GROUPS.includes(group)) {
    throw new ChunkError("invalid_header", `latent group ${group} is not one of ${WIRE_GROUPS.join(", ")}`);
  }
  return { sealed: storage === WIRE_STORAGE.sealed, bits: bits as Bits, group: group as GroupSize, axis: axis as Axis, rope: rope as RopePolicy };
}

function enumName<K extends string>(table: Readonly<Record<K, number>>, value: number, what: string): K {
  for (const [name, n] of Object.entries(table) as Array<[K, number]>) if (n === value) return name;
  throw new ChunkError("invalid_header", `${what} byte ${value} is not one of ${Object.values(table).join(", ")}`);
}

/**
 * Count limits and basic consistency, shared by the reader (on wire values) and the writer (on caller values).
 * Zero counts are malformed; counts past a named limit are too large.
 */
export function checkHeaderLimits(h: Omit<FixedHeader, "byteLength" | "specHash" | "version">, code: "invalid_header" | "invalid_input" = "invalid_header"): void {
  const g = h.geometry;
  const need: Array<[string, number, number, number]> = [
    ["tokenCount", h.tokenCount, 1, MAX_CHUNK_TOKENS],
    ["layerCount", h.layerCount, 1, MAX_MODEL_LAYERS],
    ["modelLayers", g.modelLayers, 1, MAX_MODEL_LAYERS],
    ["kvHeads", g.kvHeads, 1, MAX_GEOMETRY_VALUE],
    ["dKv", g.dKv, 1, MAX_GEOMETRY_VALUE],
    ["ropeDims", g.ropeDims, 0, MAX_GEOMETRY_VALUE],
  ];
  for (const [name, value, min, max] of need) {
    if (!Number.isInteger(value) || value < min) throw new ChunkError(code, `${name} ${value} must be an integer ≥ ${min}`);
    if (value > max) throw new ChunkError("too_large", `${name} ${value} exceeds the limit ${max}`);
  }
  if (g.kvHeads * g.dKv > MAX_ROW_WIDTH || g.kvHeads * g.ropeDims > MAX_ROW_WIDTH) {
    throw new ChunkError("too_large", `latent or rope width per token (${g.kvHeads}×${g.dKv}, ${g.kvHeads}×${g.ropeDims}) exceeds ${MAX_ROW_WIDTH}`);
  }
  if (g.ropeDims % 2 !== 0) throw new ChunkError(code, `ropeDims ${g.ropeDims} must be even`);
  if (!Number.isInteger(h.tokenStart) || h.tokenStart < 0 || h.tokenStart + h.tokenCount > 0xffffffff) {
    throw new ChunkError(code, `token range [${h.tokenStart}, +${h.tokenCount}) does not fit a u32 session index`);
  }
  if (!Number.isInteger(h.layerStart) || h.layerStart < 0 || h.layerStart + h.layerCount > g.modelLayers) {
    throw new ChunkError(code, `layer range [${h.layerStart}, ${h.layerStart + h.layerCount}) is outside the model's ${g.modelLayers} layers`);
  }
}

/** Declared size against the limit: checked before the CRC pass or any view creation. */
export function checkByteLengthLimit(byteLength: number): void {
  if (byteLength > MAX_CHUNK_BYTES) {
    throw new ChunkError("too_large", `chunk declares ${byteLength} bytes, above the limit ${MAX_CHUNK_BYTES}`);
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}
