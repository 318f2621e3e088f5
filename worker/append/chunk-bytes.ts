// Turns one upload frame into verified chunk bytes for its expected unit: a packed chunk (type 2) is verified with the
// chunk format's verifyChunk and checked against the unit and the control message; proxy latents (type 3) are packed
// here with the WASM codec. Any failure is a 422 naming what is wrong; nothing is stored by this module.
import { latentWidth, ropeWidth, type CacheSpec } from "../../format/cache-spec.ts";
import { packChunk, type LayerValues } from "../../format/chunk/pack.ts";
import { ChunkError, type ParsedChunkHeader } from "../../format/chunk/types.ts";
import { verifyChunk } from "../../format/chunk/decode.ts";
import { CodecError } from "../../format/codec/types.ts";
import { FrameType, type Frame } from "../../format/wire/frames.ts";
import { decodeLatents, LatentsDtype, LatentsError } from "../../format/wire/latents.ts";
import { workerCodec } from "../codec.ts";
import { badRequest, invalidChunk } from "../errors.ts";
import type { TokenWindow, UploadUnit } from "./plan.ts";

const describe = (u: UploadUnit): string => `chunk for tokens ${u.tokenStart}+${u.tokenCount}, layers ${u.layerStart}+${u.layerCount}`;

/** Bytes of the chunk for `unit`, from a type-2 or type-3 frame. */
export function chunkBytesFor(frame: Frame, unit: UploadUnit, spec: CacheSpec, specHash: Uint8Array, window: TokenWindow): Uint8Array {
  if (frame.type === FrameType.chunk) {
    let header: ParsedChunkHeader;
    try {
      header = verifyChunk(frame.payload, specHash, workerCodec().crc32c);
    } catch (e) {
      if (e instanceof ChunkError) throw invalidChunk(`${describe(unit)}: ${e.message}`, e.code);
      throw e;
    }
    checkHeader(header, unit, spec, window);
    return frame.payload;
  }
  if (frame.type === FrameType.latents) return packLatents(frame.payload, unit, spec, window);
  throw badRequest(`expected the ${describe(unit)} (frame type 2 or 3), got frame type ${frame.type}`);
}

function mismatch(unit: UploadUnit, what: string): never {
  throw invalidChunk(`${describe(unit)}: ${what}`, "chunk_mismatch");
}

function checkHeader(h: ParsedChunkHeader, unit: UploadUnit, spec: CacheSpec, window: TokenWindow): void {
  if (h.tokenStart !== unit.tokenStart || h.tokenCount !== unit.tokenCount) mismatch(unit, `chunk holds tokens ${h.tokenStart}+${h.tokenCount}`);
  if (h.layerStart !== unit.layerStart || h.layerCount !== unit.layerCount) mismatch(unit, `chunk holds layers ${h.layerStart}+${h.layerCount}`);
  const g = h.geometry;
  if (g.modelLayers !== spec.layers || g.kvHeads !== spec.kvHeads || g.dKv !== spec.dKv || g.ropeDims !== spec.ropeDims) {
    throw invalidChunk(`${describe(unit)}: chunk geometry differs from the session spec`, "spec_mismatch");
  }
  const c = h.codec;
  const u = unit.codec;
  if (c.sealed !== u.sealed || c.bits !== u.bits || c.group !== u.group || c.axis !== u.axis || c.rope !== u.rope) {
    throw invalidChunk(
      `${describe(unit)}: chunk codec ${JSON.stringify(c)} differs from the session codec ${JSON.stringify(u)} (a full slot is sealed, the last partial one raw)`,
      "codec_mismatch",
    );
  }
  const i0 = unit.tokenStart - window.base;
  for (let i = 0; i < unit.tokenCount; i++) {
    if (h.modality[i] !== window.modality[i0 + i]) mismatch(unit, `modality of token ${unit.tokenStart + i} differs from the control message`);
  }
  for (let i = 0; i < 3 * unit.tokenCount; i++) {
    if (h.positions[i] !== window.positions[3 * i0 + i]) mismatch(unit, `M-RoPE position of token ${unit.tokenStart + Math.floor(i / 3)} differs from the control message`);
  }
}

function packLatents(payload: Uint8Array, unit: UploadUnit, spec: CacheSpec, window: TokenWindow): Uint8Array {
  try {
    const { header: h, layers } = decodeLatents(payload);
    if (h.tokenStart !== unit.tokenStart || h.tokenCount !== unit.tokenCount || h.layerStart !== unit.layerStart || h.layerCount !== unit.layerCount) {
      mismatch(unit, `latents hold tokens ${h.tokenStart}+${h.tokenCount}, layers ${h.layerStart}+${h.layerCount}`);
    }
    if (h.latentWidth !== latentWidth(spec) || h.ropeWidth !== ropeWidth(spec)) {
      throw invalidChunk(`${describe(unit)}: latents are ${h.latentWidth}+${h.ropeWidth} wide, the spec needs ${latentWidth(spec)}+${ropeWidth(spec)}`, "spec_mismatch");
    }
    const codec = workerCodec();
    const asF32 = (a: Float32Array | Uint16Array): Float32Array => (h.dtype === LatentsDtype.f32 ? (a as Float32Array) : codec.widen(a as Uint16Array, "f16"));
    const values: LayerValues[] = layers.map((l) => ({ latent: asF32(l.latent), rope: asF32(l.rope) }));
    const i0 = unit.tokenStart - window.base;
    return packChunk(codec, spec, unit.codec, {
      tokenStart: unit.tokenStart,
      modality: window.modality.slice(i0, i0 + unit.tokenCount),
      positions: window.positions.slice(3 * i0, 3 * (i0 + unit.tokenCount)),
      layerStart: unit.layerStart,
      layers: values,
    });
  } catch (e) {
    if (e instanceof LatentsError) throw invalidChunk(`${describe(unit)}: ${e.message}`, e.code);
    if (e instanceof CodecError) throw invalidChunk(`${describe(unit)}: codec refused the latents: ${e.message}`, e.code);
    if (e instanceof ChunkError) throw invalidChunk(`${describe(unit)}: ${e.message}`, e.code);
    throw e;
  }
}
