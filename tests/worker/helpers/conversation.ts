// Test-side client for the edge store: keeps a conversation's tokens and deterministic latent values, and builds append
// bodies (control frame + the chunks the store expects: sealed for full slots, a raw tail for the last partial one).
// Values depend only on the absolute token index, so re-packing a slot in a later turn gives the same data.
import type { CacheSpec } from "../../../format/cache-spec.ts";
import { latentWidth, ropeWidth } from "../../../format/cache-spec.ts";
import { packChunk, type LayerValues } from "../../../format/chunk/pack.ts";
import { planChunkLayerRanges } from "../../../format/chunk/plan.ts";
import { referenceCodec } from "../../../format/codec/reference.ts";
import type { CodecParams } from "../../../format/codec/types.ts";
import { f32ToF16Bits } from "../../../format/codec/fp16.ts";
import { encodeFrame, FrameType } from "../../../format/wire/frames.ts";
import { controlFrame, encodeAppendControl } from "../../../format/wire/control-msgpack.ts";
import { encodeLatents, LatentsDtype } from "../../../format/wire/latents.ts";
import type { AppendControl, MediaSpan } from "../../../format/wire/messages.ts";

export interface TurnOptions {
  /** Token ids of the turn (default: derived from the index and the conversation's idSeed). */
  readonly ids?: readonly number[];
  /** Makes tokens [at, at + length) of the turn an image with this media hash. */
  readonly image?: { readonly hash: string; readonly at: number; readonly length: number };
  /** Send proxy latents (type 3) instead of packed chunks. */
  readonly proxy?: "f32" | "f16";
}

export interface PlannedChunk {
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly layerStart: number;
  readonly layerCount: number;
  readonly sealed: boolean;
  readonly bytes: Uint8Array;
}

export interface BuiltTurn {
  readonly control: AppendControl;
  readonly chunks: PlannedChunk[];
  /** Control frame then one frame per chunk. */
  readonly frames: Uint8Array[];
}

export class Conversation {
  readonly ids: number[] = [];
  readonly modality: number[] = [];
  readonly positions: number[] = [];
  readonly media: MediaSpan[] = [];
  seq = 0;
  /** A session created with storage "raw": every chunk stays float32. */
  raw = false;
  #nextPos = 0;

  constructor(
    readonly spec: CacheSpec,
    readonly codec: CodecParams,
    readonly chunkTokens: number,
    /** Seeds token ids and values: conversations with equal seeds share prefixes (and chunk keys). */
    readonly seed = crypto.getRandomValues(new Uint32Array(1))[0] % 100_000,
  ) {}

  get tokens(): number {
    return this.ids.length;
  }

  /** Deterministic latent/rope values of one token and layer (what the model would have produced). */
  values(token: number, layer: number): { latent: Float32Array; rope: Float32Array } {
    const f = (ch: number, kind: number): number => Math.sin(token * 0.37 + layer * 1.3 + ch * 0.11 + kind * 2.1 + this.seed * 0.7) * (1 + (ch % 5));
    return {
      latent: Float32Array.from({ length: latentWidth(this.spec) }, (_, ch) => f(ch, 0)),
      rope: Float32Array.from({ length: ropeWidth(this.spec) }, (_, ch) => f(ch, 1)),
    };
  }

  /** Builds the next turn of `count` tokens (does not commit it: call accept() after the store took it). */
  build(count: number, opts: TurnOptions = {}): BuiltTurn {
    const start = this.tokens;
    const ids = opts.ids ?? Array.from({ length: count }, (_, i) => 1000 + ((start + i) * 7919 + this.seed * 104_729) % 50_000);
    const modality: number[] = [];
    const positions: number[] = [];
    let pos = this.#nextPos;
    for (let i = 0; i < count; i++) {
      const img = opts.image;
      if (img !== undefined && i >= img.at && i < img.at + img.length) {
        const k = i - img.at;
        modality.push(1);
        positions.push(pos, pos + Math.floor(k / 2), pos + (k % 2));
        if (k === img.length - 1) pos += Math.max(2, Math.ceil(img.length / 2));
      } else {
        modality.push(0);
        positions.push(pos, pos, pos);
        pos++;
      }
    }
    const media: MediaSpan[] = opts.image === undefined ? [] : [{ hash: opts.image.hash, start: start + opts.image.at, length: opts.image.length }];
    const control: AppendControl = { expectedSeq: this.seq + 1, tokenIds: ids, modality, positions, media };

    const allMod = [...this.modality, ...modality];
    const allPos = [...this.positions, ...positions];
    const c = this.chunkTokens;
    const end = start + count;
    const chunks: PlannedChunk[] = [];
    const frames: Uint8Array[] = [controlFrame(encodeAppendControl(control))];
    for (let s = Math.floor(start / c) * c; s < end; s += c) {
      const n = Math.min(c, end - s);
      const sealed = n === c && !this.raw;
      const chunkCodec = { sealed, ...this.codec };
      for (const r of planChunkLayerRanges(this.spec, chunkCodec, n)) {
        const layers: LayerValues[] = [];
        for (let l = r.layerStart; l < r.layerStart + r.layerCount; l++) {
          const latent = new Float32Array(n * latentWidth(this.spec));
          const rope = new Float32Array(n * ropeWidth(this.spec));
          for (let t = 0; t < n; t++) {
            const v = this.values(s + t, l);
            latent.set(v.latent, t * v.latent.length);
            rope.set(v.rope, t * v.rope.length);
          }
          layers.push({ latent, rope });
        }
        const input = {
          tokenStart: s,
          modality: Uint8Array.from(allMod.slice(s, s + n)),
          positions: Int32Array.from(allPos.slice(3 * s, 3 * (s + n))),
          layerStart: r.layerStart,
          layers,
        };
        const bytes = packChunk(referenceCodec, this.spec, chunkCodec, input);
        chunks.push({ tokenStart: s, tokenCount: n, layerStart: r.layerStart, layerCount: r.layerCount, sealed, bytes });
        if (opts.proxy === undefined) frames.push(encodeFrame(FrameType.chunk, bytes));
        else frames.push(encodeFrame(FrameType.latents, latentsPayload(opts.proxy, s, n, r.layerStart, layers, this.spec)));
      }
    }
    return { control, chunks, frames };
  }

  /** Records a built turn as committed. */
  accept(turn: BuiltTurn): void {
    this.ids.push(...turn.control.tokenIds);
    this.modality.push(...turn.control.modality);
    this.positions.push(...turn.control.positions);
    this.media.push(...(turn.control.media ?? []));
    let max = this.#nextPos - 1;
    for (const p of turn.control.positions) max = Math.max(max, p);
    this.#nextPos = max + 1;
    this.seq++;
  }
}

function latentsPayload(dtype: "f32" | "f16", tokenStart: number, n: number, layerStart: number, layers: LayerValues[], spec: CacheSpec): Uint8Array {
  const header = {
    dtype: dtype === "f32" ? LatentsDtype.f32 : LatentsDtype.f16,
    tokenStart,
    tokenCount: n,
    layerStart,
    layerCount: layers.length,
    latentWidth: latentWidth(spec),
    ropeWidth: ropeWidth(spec),
  };
  const toF16 = (a: Float32Array): Uint16Array => Uint16Array.from(a, (x) => f32ToF16Bits(x, "nearest-even"));
  return encodeLatents(
    header,
    layers.map((l) => (dtype === "f32" ? l : { latent: toF16(l.latent), rope: toF16(l.rope) })),
  );
}

/** Concatenates frames into one body. */
export function concatFrames(frames: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(frames.reduce((s, f) => s + f.length, 0));
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}
