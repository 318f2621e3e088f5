// Chunk reader (docs/chunk-format.md). Checks run in a fixed order — magic, version, header enums and limits, declared
// length against the recomputed layout, length of the input, CRC-32C, then structure and values — and every failure is
// a ChunkError naming the problem. Arrays returned by decodeChunk are views into `bytes` where alignment allows.
import { type CacheSpec } from "../cache-spec.ts";
import type { QuantizedBlock } from "../codec/types.ts";
import { crc32c, type Crc32c } from "../hash/crc32c.ts";
import { hashesEqual, specHash as hashSpec } from "../hash/spec-hash.ts";
import { checkCodeTail, checkFinite, checkFp16, checkZeroPadding } from "./checks.ts";
import { checkByteLengthLimit, readFixedHeader } from "./header.ts";
import { alignUp, chunkLayout, geometryOfSpec, type BlockLayout, type ChunkLayout } from "./layout.ts";
import { f32At, i32At, u16At } from "./views.ts";
import { ChunkError, type ChunkLayer, type DecodedChunk, type ParsedChunkHeader } from "./types.ts";

interface Parsed {
  readonly header: ParsedChunkHeader;
  readonly layout: ChunkLayout;
}

function parse(bytes: Uint8Array, crc: Crc32c): Parsed {
  const fixed = readFixedHeader(bytes);
  checkByteLengthLimit(fixed.byteLength);
  const layout = chunkLayout(fixed.geometry, fixed.codec, fixed.tokenCount, fixed.layerCount, "invalid_header");
  if (layout.byteLength !== fixed.byteLength) {
    throw new ChunkError("invalid_header", `header declares ${fixed.byteLength} bytes but its fields imply ${layout.byteLength}`);
  }
  if (bytes.length < layout.byteLength) {
    throw new ChunkError("truncated", `chunk has ${bytes.length} of its ${layout.byteLength} bytes`);
  }
  if (bytes.length > layout.byteLength) {
    throw new ChunkError("invalid_header", `${bytes.length - layout.byteLength} trailing bytes after the ${layout.byteLength}-byte chunk`);
  }
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(layout.checksumOffset, true);
  const actual = crc(bytes.subarray(0, layout.checksumOffset));
  if (stored !== actual) {
    throw new ChunkError("checksum_mismatch", `CRC-32C is 0x${hex8(actual)} but the chunk says 0x${hex8(stored)}: corrupted in storage or transit`);
  }
  const modality = bytes.subarray(layout.modalityOffset, layout.modalityOffset + fixed.tokenCount);
  for (let i = 0; i < modality.length; i++) {
    if (modality[i] > 1) throw new ChunkError("invalid_header", `modality of token ${i} is ${modality[i]}, expected 0 (text) or 1 (image)`);
  }
  checkZeroPadding(bytes, layout.modalityOffset + fixed.tokenCount, layout.positionsOffset, "modality");
  const header: ParsedChunkHeader = {
    version: fixed.version,
    specHash: fixed.specHash,
    codec: fixed.codec,
    tokenStart: fixed.tokenStart,
    tokenCount: fixed.tokenCount,
    layerStart: fixed.layerStart,
    layerCount: fixed.layerCount,
    modality,
    positions: i32At(bytes, layout.positionsOffset, 3 * fixed.tokenCount),
    geometry: fixed.geometry,
    byteLength: fixed.byteLength,
  };
  return { header, layout };
}

/**
 * Parses and validates a chunk's header without touching its layer payload: magic, version, limits, declared length,
 * CRC-32C over the whole chunk, modality values. Cheap (one CRC pass); use verifyChunk to also check the spec hash and
 * the payload's values.
 */
export function readChunkHeader(bytes: Uint8Array, crc: Crc32c = crc32c): ParsedChunkHeader {
  return parse(bytes, crc).header;
}

/**
 * Full validation without materialising floats: everything readChunkHeader checks, plus the spec hash against
 * `expectedSpecHash` (spec_mismatch) and the payload (zero padding, finite fp16 scales/zeros/values, finite raw floats,
 * zero unused code bits). The Worker runs this on every upload.
 */
export function verifyChunk(bytes: Uint8Array, expectedSpecHash: Uint8Array, crc: Crc32c = crc32c): ParsedChunkHeader {
  const { header, layout } = parse(bytes, crc);
  checkSpecHash(header, expectedSpecHash);
  for (let l = 0; l < header.layerCount; l++) readLayer(bytes, layout, l, header.layerStart + l);
  return header;
}

/** Decodes a chunk of `spec`'s cache: verifyChunk's checks, then the geometry against the spec, then the layers. */
export function decodeChunk(bytes: Uint8Array, spec: CacheSpec, crc: Crc32c = crc32c): DecodedChunk {
  const { header, layout } = parse(bytes, crc);
  checkSpecHash(header, hashSpec(spec));
  const g = header.geometry;
  const s = geometryOfSpec(spec);
  if (g.modelLayers !== s.modelLayers || g.kvHeads !== s.kvHeads || g.dKv !== s.dKv || g.ropeDims !== s.ropeDims) {
    throw new ChunkError("invalid_header", "chunk geometry disagrees with the spec its hash names: the writer is broken");
  }
  const layers: ChunkLayer[] = [];
  for (let l = 0; l < header.layerCount; l++) layers.push(readLayer(bytes, layout, l, header.layerStart + l));
  return { header, layers };
}

function checkSpecHash(header: ParsedChunkHeader, expected: Uint8Array): void {
  if (!hashesEqual(header.specHash, expected)) {
    throw new ChunkError("spec_mismatch", "chunk belongs to a different cache spec (spec hash differs): wrong model, d_kv or rope dims");
  }
}

function readLayer(bytes: Uint8Array, layout: ChunkLayout, l: number, index: number): ChunkLayer {
  const base = layout.firstLayerOffset + l * layout.layerStride;
  const end = base + layout.layerStride;
  const latent = layout.latent;
  const rope = layout.rope;
  if (latent.kind === "raw" && rope.kind === "raw") {
    const lat = f32At(bytes, base + latent.offset, latent.rows * latent.cols);
    const rp = f32At(bytes, base + rope.offset, rope.rows * rope.cols);
    checkFinite(lat, `layer ${index} latent`, "invalid_payload");
    checkFinite(rp, `layer ${index} rope`, "invalid_payload");
    return { kind: "raw", latent: lat, rope: rp };
  }
  const latentBlock = readQuantized(bytes, base, latent, rope.kind === "quantized" ? base + rope.codesOffset : end, `layer ${index} latent`);
  const ropeBlock = readQuantized(bytes, base, rope, end, `layer ${index} rope`);
  return { kind: "quantized", latent: latentBlock, rope: ropeBlock };
}

function readQuantized(bytes: Uint8Array, base: number, b: BlockLayout, sectionEnd: number, what: string): QuantizedBlock {
  if (b.kind !== "quantized") throw new ChunkError("invalid_header", `${what}: mixed raw and quantized sections`);
  const codesAt = base + b.codesOffset;
  const codes = bytes.subarray(codesAt, codesAt + b.codesBytes);
  checkZeroPadding(bytes, codesAt + b.codesBytes, codesAt + alignUp(b.codesBytes), `${what} codes`);
  const scales = u16At(bytes, base + b.scalesOffset, b.scaleCount);
  const zeros = u16At(bytes, base + b.zerosOffset, b.scaleCount);
  checkZeroPadding(bytes, base + b.scalesOffset + 2 * b.scaleCount, base + b.zerosOffset, `${what} scales`);
  checkZeroPadding(bytes, base + b.zerosOffset + 2 * b.scaleCount, sectionEnd, `${what} zeros`);
  if (b.bits === 16) checkFp16(u16At(bytes, codesAt, b.rows * b.cols), what, false, "invalid_payload");
  else checkCodeTail(codes, b.rows * b.cols, b.bits, what, "invalid_payload");
  checkFp16(scales, `${what} scales`, true, "invalid_payload");
  checkFp16(zeros, `${what} zeros`, false, "invalid_payload");
  return { rows: b.rows, cols: b.cols, bits: b.bits, group: b.group, axis: b.axis, codes, scales, zeros };
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0");
}
