// Proxy-mode payload (frame type 3): the float16/float32 latent and rope values of one chunk — a token range × a layer
// range — that the Worker quantizes and packs with the session codec. Layout (all little-endian, 4-byte aligned):
//   u8 dtype (0 = f32, 1 = f16) · u8[3] zero · u32 tokenStart · u32 tokenCount · u32 layerStart · u32 layerCount
//   · u32 latentWidth · u32 ropeWidth · then per layer: latent [tokens × latentWidth], rope [tokens × ropeWidth]

import { MlaError } from "../errors.ts";
export const LATENTS_HEADER_BYTES = 28;

export const LatentsDtype = { f32: 0, f16: 1 } as const;
export type LatentsDtype = (typeof LatentsDtype)[keyof typeof LatentsDtype];

export interface LatentsHeader {
  readonly dtype: LatentsDtype;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly layerStart: number;
  readonly layerCount: number;
  readonly latentWidth: number;
  readonly ropeWidth: number;
}

/** Values of one layer: Float32Array for f32, Uint16Array of IEEE half bit patterns for f16. */
export interface LatentsLayer {
  readonly latent: Float32Array | Uint16Array;
  readonly rope: Float32Array | Uint16Array;
}

export class LatentsError extends MlaError<"invalid_latents"> {
  override readonly name = "LatentsError";
  constructor(message: string) {
    super("invalid_latents", message);
  }
}

function bytesPerValue(dtype: LatentsDtype): number {
  return dtype === LatentsDtype.f32 ? 4 : 2;
}

/** Payload bytes of a latents frame with this header. */
export function latentsPayloadBytes(h: LatentsHeader): number {
  return LATENTS_HEADER_BYTES + h.layerCount * h.tokenCount * (h.latentWidth + h.ropeWidth) * bytesPerValue(h.dtype);
}

/** Encodes a latents payload; `layers` must hold layerCount entries of tokens × width values of the header's dtype. */
export function encodeLatents(h: LatentsHeader, layers: readonly LatentsLayer[]): Uint8Array {
  if (layers.length !== h.layerCount) throw new LatentsError(`${layers.length} layers given for layerCount ${h.layerCount}`);
  const out = new Uint8Array(latentsPayloadBytes(h));
  const dv = new DataView(out.buffer);
  out[0] = h.dtype;
  const fields = [h.tokenStart, h.tokenCount, h.layerStart, h.layerCount, h.latentWidth, h.ropeWidth];
  fields.forEach((v, i) => dv.setUint32(4 + 4 * i, v, true));
  let at = LATENTS_HEADER_BYTES;
  const bpv = bytesPerValue(h.dtype);
  for (const [i, layer] of layers.entries()) {
    for (const [arr, width, what] of [
      [layer.latent, h.latentWidth, "latent"],
      [layer.rope, h.ropeWidth, "rope"],
    ] as const) {
      if (arr.length !== h.tokenCount * width) throw new LatentsError(`layer ${i} ${what}: ${arr.length} values, expected ${h.tokenCount}×${width}`);
      if ((arr instanceof Float32Array) !== (h.dtype === LatentsDtype.f32)) throw new LatentsError(`layer ${i} ${what}: array type does not match the dtype`);
      out.set(new Uint8Array(arr.buffer, arr.byteOffset, arr.length * bpv), at);
      at += arr.length * bpv;
    }
  }
  return out;
}

/** Reads a latents payload. Arrays are views into `payload` (copied when it is not 4-byte aligned). */
export function decodeLatents(payload: Uint8Array): { header: LatentsHeader; layers: LatentsLayer[] } {
  if (payload.length < LATENTS_HEADER_BYTES) throw new LatentsError(`latents frame has ${payload.length} bytes, fewer than its ${LATENTS_HEADER_BYTES}-byte header`);
  const bytes = payload.byteOffset % 4 === 0 ? payload : payload.slice();
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const dtype = bytes[0];
  if (dtype !== LatentsDtype.f32 && dtype !== LatentsDtype.f16) throw new LatentsError(`latents dtype ${dtype} is not 0 (f32) or 1 (f16)`);
  if (bytes[1] !== 0 || bytes[2] !== 0 || bytes[3] !== 0) throw new LatentsError("latents header reserved bytes must be zero");
  const [tokenStart, tokenCount, layerStart, layerCount, latentWidth, ropeWidth] = [0, 1, 2, 3, 4, 5].map((i) => dv.getUint32(4 + 4 * i, true));
  const header: LatentsHeader = { dtype, tokenStart, tokenCount, layerStart, layerCount, latentWidth, ropeWidth };
  const expected = latentsPayloadBytes(header);
  if (expected !== bytes.length) throw new LatentsError(`latents frame has ${bytes.length} bytes but its header implies ${expected}`);
  const layers: LatentsLayer[] = [];
  let at = bytes.byteOffset + LATENTS_HEADER_BYTES;
  const view = (n: number): Float32Array | Uint16Array => {
    const arr = dtype === LatentsDtype.f32 ? new Float32Array(bytes.buffer, at, n) : new Uint16Array(bytes.buffer, at, n);
    at += n * bytesPerValue(dtype);
    return arr;
  };
  for (let l = 0; l < layerCount; l++) {
    const latent = view(tokenCount * latentWidth);
    const rope = view(tokenCount * ropeWidth);
    layers.push({ latent, rope });
  }
  return { header, layers };
}
