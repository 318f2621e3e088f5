// Chunk writer: DecodedChunk + cache spec → deterministic bytes (docs/chunk-format.md). Every block is checked against
// the layout that (spec, codec, tokens) imply, so a writer bug is a ChunkError here and never a chunk readers choke on.
import { latentWidth, ropeWidth, type CacheSpec } from "../cache-spec.ts";
import type { QuantizedBlock } from "../codec/types.ts";
import { crc32c, type Crc32c } from "../hash/crc32c.ts";
import { hashesEqual, specHash as hashSpec } from "../hash/spec-hash.ts";
import { FORMAT_VERSION, WIRE_BITS, WIRE_GROUPS } from "./constants.ts";
import { checkCodeTail, checkFinite, checkFp16 } from "./checks.ts";
import { checkHeaderLimits, writeFixedHeader } from "./header.ts";
import { chunkLayout, geometryOfSpec, type BlockLayout } from "./layout.ts";
import { putLittleEndian, u16At } from "./views.ts";
import { MAX_CHUNK_BYTES, ChunkError, type ChunkCodec, type ChunkLayer, type DecodedChunk } from "./types.ts";

/** Throws ChunkError("invalid_input") unless the codec fields are ones the wire can carry. */
export function checkChunkCodec(codec: ChunkCodec): void {
  if (!WIRE_BITS.includes(codec.bits)) throw new ChunkError("invalid_input", `bits ${codec.bits} is not one of ${WIRE_BITS.join(", ")}`);
  if (!WIRE_GROUPS.includes(codec.group)) throw new ChunkError("invalid_input", `group ${codec.group} is not one of ${WIRE_GROUPS.join(", ")}`);
  if (codec.axis !== "token" && codec.axis !== "channel") throw new ChunkError("invalid_input", `axis ${String(codec.axis)} is not token or channel`);
  if (codec.rope !== "fp16" && codec.rope !== "int8" && codec.rope !== "int4") {
    throw new ChunkError("invalid_input", `rope policy ${String(codec.rope)} is not fp16, int8 or int4`);
  }
}

/**
 * Encodes a chunk. `chunk.header.specHash` must be the hash of `spec`; the layers must be quantized blocks shaped as
 * the codec implies (sealed) or float32 arrays of tokens × width (raw). Equal inputs always give equal bytes.
 */
export function encodeChunk(spec: CacheSpec, chunk: DecodedChunk, crc: Crc32c = crc32c): Uint8Array {
  const h = chunk.header;
  if (h.version !== FORMAT_VERSION) {
    throw new ChunkError("invalid_input", `header version ${h.version}: this writer writes version ${FORMAT_VERSION} only`);
  }
  if (!hashesEqual(h.specHash, hashSpec(spec))) {
    throw new ChunkError("spec_mismatch", "header specHash is not the hash of the spec passed to encodeChunk");
  }
  checkChunkCodec(h.codec);
  const geometry = geometryOfSpec(spec);
  checkHeaderLimits({ codec: h.codec, geometry, tokenStart: h.tokenStart, tokenCount: h.tokenCount, layerStart: h.layerStart, layerCount: h.layerCount }, "invalid_input");
  if (h.modality.length !== h.tokenCount) {
    throw new ChunkError("invalid_input", `modality has ${h.modality.length} entries for ${h.tokenCount} tokens`);
  }
  for (let i = 0; i < h.modality.length; i++) {
    if (h.modality[i] > 1) throw new ChunkError("invalid_input", `modality[${i}] is ${h.modality[i]}, expected 0 (text) or 1 (image)`);
  }
  if (h.positions.length !== 3 * h.tokenCount) {
    throw new ChunkError("invalid_input", `positions has ${h.positions.length} entries, expected 3 × ${h.tokenCount}`);
  }
  if (chunk.layers.length !== h.layerCount) {
    throw new ChunkError("invalid_input", `${chunk.layers.length} layers given for a layerCount of ${h.layerCount}`);
  }
  const layout = chunkLayout(geometry, h.codec, h.tokenCount, h.layerCount, "invalid_input");
  if (layout.byteLength > MAX_CHUNK_BYTES) {
    throw new ChunkError("too_large", `chunk would be ${layout.byteLength} bytes, above ${MAX_CHUNK_BYTES}: split its layers (planChunkLayerRanges)`);
  }
  if (latentWidth(spec) !== layout.latentWidth || ropeWidth(spec) !== layout.ropeWidth) {
    throw new ChunkError("invalid_input", "layout widths disagree with the spec");
  }

  const out = new Uint8Array(layout.byteLength);
  writeFixedHeader(out, { ...h, geometry, byteLength: layout.byteLength });
  out.set(h.modality, layout.modalityOffset);
  putLittleEndian(out, layout.positionsOffset, h.positions);
  for (let l = 0; l < h.layerCount; l++) {
    const base = layout.firstLayerOffset + l * layout.layerStride;
    writeLayer(out, base, chunk.layers[l], layout.latent, layout.rope, h.codec.sealed, h.layerStart + l);
  }
  const checksum = crc(out.subarray(0, layout.checksumOffset));
  new DataView(out.buffer).setUint32(layout.checksumOffset, checksum, true);
  return out;
}

function writeLayer(out: Uint8Array, base: number, layer: ChunkLayer, latent: BlockLayout, rope: BlockLayout, sealed: boolean, index: number): void {
  if (sealed !== (layer.kind === "quantized")) {
    throw new ChunkError("invalid_input", `layer ${index} is ${layer.kind} but the chunk is ${sealed ? "sealed" : "raw"}`);
  }
  if (layer.kind === "raw") {
    writeRaw(out, base, layer.latent, latent, `layer ${index} latent`);
    writeRaw(out, base, layer.rope, rope, `layer ${index} rope`);
  } else {
    writeQuantized(out, base, layer.latent, latent, `layer ${index} latent`);
    writeQuantized(out, base, layer.rope, rope, `layer ${index} rope`);
  }
}

function writeRaw(out: Uint8Array, base: number, values: Float32Array, b: BlockLayout, what: string): void {
  if (b.kind !== "raw") throw new ChunkError("invalid_input", `${what}: raw values for a quantized section`);
  if (values.length !== b.rows * b.cols) {
    throw new ChunkError("invalid_input", `${what} has ${values.length} values, expected ${b.rows}×${b.cols}`);
  }
  checkFinite(values, what, "invalid_input");
  putLittleEndian(out, base + b.offset, values);
}

function writeQuantized(out: Uint8Array, base: number, block: QuantizedBlock, b: BlockLayout, what: string): void {
  if (b.kind !== "quantized") throw new ChunkError("invalid_input", `${what}: a quantized block for a raw section`);
  const want = `${b.rows}×${b.cols} bits ${b.bits} group ${b.group} ${b.axis}`;
  const got = `${block.rows}×${block.cols} bits ${block.bits} group ${block.group} ${block.axis}`;
  if (want !== got) throw new ChunkError("invalid_input", `${what} block is ${got}, expected ${want}`);
  if (block.codes.length !== b.codesBytes || block.scales.length !== b.scaleCount || block.zeros.length !== b.scaleCount) {
    throw new ChunkError(
      "invalid_input",
      `${what} block has ${block.codes.length} code bytes and ${block.scales.length}/${block.zeros.length} scales/zeros, expected ${b.codesBytes} and ${b.scaleCount}`,
    );
  }
  if (b.bits === 16) checkFp16(u16At(block.codes, 0, b.rows * b.cols), what, false, "invalid_input");
  else checkCodeTail(block.codes, b.rows * b.cols, b.bits, what, "invalid_input");
  checkFp16(block.scales, `${what} scales`, true, "invalid_input");
  checkFp16(block.zeros, `${what} zeros`, false, "invalid_input");
  out.set(block.codes, base + b.codesOffset);
  putLittleEndian(out, base + b.scalesOffset, block.scales);
  putLittleEndian(out, base + b.zerosOffset, block.zeros);
}
