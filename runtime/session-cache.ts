// The session-cache bridge: after each turn, seals the latent cache's full C-token slots with the codec, packs the new
// tokens into chunks (sealed slots quantized, the unsealed tail raw float32, docs/codec.md "Residual tail"), and makes
// the in-memory cache hold exactly the values a restore will read, so a restored session decodes bit-identically.

import { latentWidth, type CacheSpec } from "../format/cache-spec.ts";
import { decodeChunk, encodeChunk, FORMAT_VERSION, packChunk, planChunkLayerRanges, type ChunkCodec } from "../format/chunk/index.ts";
import type { Codec, CodecParams, QuantizedBlock } from "../format/codec/types.ts";
import { specHash } from "../format/hash/spec-hash.ts";
import type { SessionStorage } from "../format/wire/messages.ts";
import type { MlaCacheSnapshot } from "./mla/attention.ts";
import type { SlotSealing } from "./mla/slot-sealing.ts";
import { RuntimeError } from "./errors.ts";

/** One packed chunk of a turn upload, in the order the store expects (slot, then layer range). */
export interface PackedChunk {
  readonly slot: number;
  readonly tokenStart: number;
  readonly tokenCount: number;
  readonly layerStart: number;
  readonly layerCount: number;
  readonly sealed: boolean;
  readonly bytes: Uint8Array;
}

/** Chunks of one turn, ready to upload; `apply()` makes them the session's state once the store accepted them. */
export interface PendingCommit {
  readonly chunks: readonly PackedChunk[];
  /** Tokens the session holds once committed. */
  readonly tokens: number;
  apply(): void;
}

export interface SessionCacheOptions {
  readonly spec: CacheSpec;
  readonly params: CodecParams;
  /** Tokens per sealed chunk C. */
  readonly chunkTokens: number;
  readonly codec: Codec;
  /** "quantized" (default): full slots are sealed with the codec; "raw": every chunk stays float32 (lossless). */
  readonly storage?: SessionStorage;
}

/** Throws RuntimeError("bad_codec") unless `params` can seal C-token slots of `spec` (docs/codec.md group rules). */
export function checkSessionCodec(spec: CacheSpec, params: CodecParams, chunkTokens: number): void {
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1 || chunkTokens > 4096) {
    throw new RuntimeError("bad_codec", `chunkTokens must be an integer in [1, 4096], got ${chunkTokens}`);
  }
  const dc = latentWidth(spec);
  const extent = params.axis === "token" ? dc : chunkTokens;
  const g = Math.min(params.group, extent);
  if (extent % g !== 0) {
    const what = params.axis === "token" ? `D_c = ${dc}` : `chunkTokens = ${chunkTokens}`;
    throw new RuntimeError("bad_codec", `group ${params.group} (effective ${g}) does not divide ${what} for the ${params.axis} axis`);
  }
}

/** Growable per-token metadata of the tokens from `base` on: modality and token-major [t, h, w] positions. */
class TokenMeta {
  base = 0;
  count = 0;
  modality = new Uint8Array(64);
  positions = new Int32Array(192);

  push(modality: Uint8Array, positions: Int32Array): void {
    const need = this.count + modality.length;
    if (need > this.modality.length) {
      const cap = Math.max(need, 2 * this.modality.length);
      const m = new Uint8Array(cap);
      m.set(this.modality.subarray(0, this.count));
      const p = new Int32Array(3 * cap);
      p.set(this.positions.subarray(0, 3 * this.count));
      this.modality = m;
      this.positions = p;
    }
    this.modality.set(modality, this.count);
    this.positions.set(positions, 3 * this.count);
    this.count = need;
  }

  /** Forgets tokens before `index` (session index). */
  dropBefore(index: number): void {
    const k = index - this.base;
    if (k <= 0) return;
    this.modality.copyWithin(0, k, this.count);
    this.positions.copyWithin(0, 3 * k, 3 * this.count);
    this.count -= k;
    this.base = index;
  }

  end(): number {
    return this.base + this.count;
  }
}

/** Converts stream-major [3 × n] positions (DecoderSession's layout) to token-major [n × 3] (the chunk layout). */
export function tokenMajorPositions(streamMajor: Int32Array, n: number): Int32Array {
  const out = new Int32Array(3 * n);
  for (let i = 0; i < n; i++) {
    out[3 * i] = streamMajor[i];
    out[3 * i + 1] = streamMajor[n + i];
    out[3 * i + 2] = streamMajor[2 * n + i];
  }
  return out;
}

export class SessionCache {
  readonly spec: CacheSpec;
  readonly params: CodecParams;
  readonly chunkTokens: number;
  readonly storage: SessionStorage;
  private readonly codec: Codec;
  /** Tokens already uploaded (covered by committed chunks). */
  private stored = 0;
  /** Metadata from the first token of the slot holding `stored` on. */
  private readonly meta = new TokenMeta();

  constructor(options: SessionCacheOptions) {
    checkSessionCodec(options.spec, options.params, options.chunkTokens);
    this.spec = options.spec;
    this.params = options.params;
    this.chunkTokens = options.chunkTokens;
    this.codec = options.codec;
    this.storage = options.storage ?? "quantized";
  }

  /** Tokens covered by committed chunks. */
  get storedTokens(): number {
    return this.stored;
  }

  /** Tokens recorded (committed or not). */
  get length(): number {
    return this.meta.end();
  }

  /** Tokens inside sealed (quantized) slots. */
  get sealedTokens(): number {
    return Math.floor(this.stored / this.chunkTokens) * this.chunkTokens;
  }

  /** Records the modality and token-major positions of a block just appended to the decoder. */
  record(modality: Uint8Array, positions: Int32Array): void {
    if (positions.length !== 3 * modality.length) {
      throw new RuntimeError("out_of_sync", `block of ${modality.length} tokens has ${positions.length} position values, expected ${3 * modality.length}`);
    }
    this.meta.push(modality, positions);
  }

  /**
   * Packs the tokens appended since the last commit: every slot they touch becomes one chunk per layer range, sealed
   * when the slot is full (the blocks `sealing` quantized the moment the slot filled, encoded as they are), raw float32
   * otherwise (the sealing's raw rows). Nothing changes until `apply()`: call it once the store has accepted the chunks;
   * it releases what the upload covers.
   */
  prepareCommit(sealing: SlotSealing): PendingCommit {
    const C = this.chunkTokens;
    const n = this.meta.end();
    if (n === this.stored) return { chunks: [], tokens: n, apply: () => undefined };
    for (let l = 0; l < this.spec.layers; l++) {
      if (sealing.lengthOf(l) !== n) {
        throw new RuntimeError("out_of_sync", `layer ${l} of the decoder cache holds ${sealing.lengthOf(l)} tokens but ${n} were recorded`);
      }
    }
    const hash = specHash(this.spec);
    const chunks: PackedChunk[] = [];
    for (let slot = Math.floor(this.stored / C); slot * C < n; slot++) {
      const start = slot * C;
      const end = Math.min(start + C, n);
      const sealed = end - start === C && this.storage === "quantized";
      const chunkCodec: ChunkCodec = { sealed, ...this.params };
      const i0 = start - this.meta.base;
      if (i0 < 0) throw new RuntimeError("out_of_sync", `positions of token ${start} were not recorded`);
      const modality = this.meta.modality.slice(i0, i0 + end - start);
      const positions = this.meta.positions.slice(3 * i0, 3 * (i0 + end - start));
      const blocks = sealed ? sealing.sealedSlot(slot) : null;
      for (const range of planChunkLayerRanges(this.spec, chunkCodec, end - start)) {
        const layerIds = Array.from({ length: range.layerCount }, (_, i) => range.layerStart + i);
        const bytes = blocks
          ? encodeChunk(this.spec, {
              header: { version: FORMAT_VERSION, specHash: hash, codec: chunkCodec, tokenStart: start, tokenCount: end - start, layerStart: range.layerStart, layerCount: range.layerCount, modality, positions },
              layers: layerIds.map((l) => ({ kind: "quantized" as const, latent: blocks[l].latent, rope: blocks[l].rope })),
            })
          : packChunk(this.codec, this.spec, chunkCodec, { tokenStart: start, modality, positions, layerStart: range.layerStart, layers: layerIds.map((l) => sealing.rawRows(l, start, end - start)) });
        chunks.push({ slot, tokenStart: start, tokenCount: end - start, layerStart: range.layerStart, layerCount: range.layerCount, sealed, bytes });
      }
    }
    let applied = false;
    return {
      chunks,
      tokens: n,
      apply: () => {
        if (applied) return;
        applied = true;
        this.stored = n;
        this.meta.dropBefore(Math.floor(n / C) * C);
        sealing.release(n);
      },
    };
  }

  /**
   * Whether the committed cache can be cut to `length` tokens locally: the slot holding the cut is still recorded
   * here (its raw rows and positions were not released by a later commit).
   */
  canTruncate(length: number): boolean {
    return Number.isInteger(length) && length <= this.stored && Math.floor(length / this.chunkTokens) * this.chunkTokens >= this.meta.base;
  }

  /** Cuts the committed cache to `length` tokens (the store was truncated to the same turn). */
  truncateCommitted(length: number): void {
    if (!this.canTruncate(length)) throw new RuntimeError("out_of_sync", `cannot cut to ${length}: tokens from ${this.meta.base} on are recorded, ${this.stored} committed`);
    this.meta.count = length - this.meta.base;
    this.stored = length;
  }

  /** Token-major positions of the recorded tokens [start, start + n) (not yet dropped by a commit). */
  positionsOf(start: number, n: number): Int32Array {
    const i0 = start - this.meta.base;
    if (i0 < 0 || start + n > this.meta.end()) throw new RuntimeError("out_of_sync", `positions of tokens ${start}..${start + n - 1} are not recorded`);
    return this.meta.positions.slice(3 * i0, 3 * (i0 + n));
  }

  /** Forgets recorded tokens at index ≥ length (an uncommitted turn that failed or was aborted). */
  rollback(length: number): void {
    if (length < this.stored || length > this.meta.end()) {
      throw new RuntimeError("out_of_sync", `cannot roll back to ${length}: ${this.stored} tokens are committed, ${this.meta.end()} recorded`);
    }
    this.meta.count = length - this.meta.base;
  }

  /** Adopts a restored cache: `tokens` stored tokens, the metadata of its unsealed tail (from the tail chunk). */
  adoptRestored(tokens: number, tailModality: Uint8Array, tailPositions: Int32Array): void {
    const tailStart = Math.floor(tokens / this.chunkTokens) * this.chunkTokens;
    if (tailModality.length !== tokens - tailStart) {
      throw new RuntimeError("bad_restore", `restored tail holds ${tailModality.length} tokens, expected ${tokens - tailStart}`);
    }
    this.meta.base = tailStart;
    this.meta.count = 0;
    this.meta.push(tailModality, tailPositions);
    this.stored = tokens;
  }

  private get ropeWidth(): number {
    return this.spec.kvHeads * this.spec.ropeDims;
  }
}

/** Where a restore puts each chunk's layers: a CPU snapshot (dequantized) or the kernels' cache (packed words as they are). */
export interface RestoreSink {
  /** One layer of a sealed chunk: the packed blocks straight from the chunk bytes. */
  sealed(layer: number, tokenStart: number, latent: QuantizedBlock, rope: QuantizedBlock): void;
  /** One layer of a raw chunk: float32 rows. */
  raw(layer: number, tokenStart: number, latent: Float32Array, rope: Float32Array): void;
}

/** A sink that dequantizes into full float32 arrays: the CPU decoder's snapshot. */
export class SnapshotSink implements RestoreSink {
  readonly latents: Float32Array[];
  readonly ropes: Float32Array[];
  private readonly dc: number;
  private readonly rw: number;

  constructor(
    private readonly codec: Codec,
    spec: CacheSpec,
    tokens: number,
  ) {
    this.dc = latentWidth(spec);
    this.rw = spec.kvHeads * spec.ropeDims;
    this.latents = Array.from({ length: spec.layers }, () => new Float32Array(tokens * this.dc));
    this.ropes = Array.from({ length: spec.layers }, () => new Float32Array(tokens * this.rw));
  }

  sealed(layer: number, tokenStart: number, latent: QuantizedBlock, rope: QuantizedBlock): void {
    this.latents[layer].set(this.codec.dequantize(latent), tokenStart * this.dc);
    if (rope.cols > 0) this.ropes[layer].set(this.codec.dequantize(rope), tokenStart * this.rw);
  }

  raw(layer: number, tokenStart: number, latent: Float32Array, rope: Float32Array): void {
    this.latents[layer].set(latent, tokenStart * this.dc);
    this.ropes[layer].set(rope, tokenStart * this.rw);
  }

  snapshot(modality: Uint8Array): MlaCacheSnapshot {
    return { length: modality.length, modality, layers: this.latents.map((latent, l) => ({ latent, kRope: this.ropes[l] })) };
  }
}

/** What a restore assembled: the tail's raw rows and metadata, the next text position, and what it cost. */
export interface AssembledCache {
  readonly tokens: number;
  readonly modality: Uint8Array;
  /** Raw rows of tokens [⌊tokens/C⌋·C, tokens) per layer (what the decoder keeps unsealed). */
  readonly tail: readonly { readonly latent: Float32Array; readonly rope: Float32Array }[];
  readonly tailModality: Uint8Array;
  readonly tailPositions: Int32Array;
  /** Max stored position + 1 (Qwen2.5-VL: the position the next text token gets). */
  readonly nextPosition: number;
  readonly chunks: number;
  readonly bytes: number;
  /** Chunk bytes per slot. */
  readonly slotBytes: ReadonlyMap<number, number>;
  /** Time in chunk decoding and checks, and time in the sink (dequantize for a snapshot, cache writes for the kernels). */
  readonly decodeMs: number;
  readonly sinkMs: number;
}

const clock = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

/**
 * Collects the chunks of a restore stream into a full cache of `tokens` tokens: every (token, layer) must be covered
 * exactly once by chunks of this spec and codec, slot-aligned, sealed when full and raw only for the last slot. Each
 * chunk's layers go to the sink as they arrive.
 */
export class CacheAssembler {
  private readonly dc: number;
  private readonly rw: number;
  private readonly tailStart: number;
  private readonly tailLatents: Float32Array[];
  private readonly tailRopes: Float32Array[];
  private readonly covered: Uint8Array;
  private readonly modality: Uint8Array;
  private readonly positions: Int32Array;
  private maxPosition = -1;
  private chunkCount = 0;
  private byteCount = 0;
  private decodeMs = 0;
  private sinkMs = 0;
  private readonly slotBytes = new Map<number, number>();

  constructor(
    private readonly options: SessionCacheOptions,
    readonly tokens: number,
    private readonly sink: RestoreSink,
  ) {
    checkSessionCodec(options.spec, options.params, options.chunkTokens);
    const { spec } = options;
    this.dc = latentWidth(spec);
    this.rw = spec.kvHeads * spec.ropeDims;
    this.tailStart = Math.floor(tokens / options.chunkTokens) * options.chunkTokens;
    const tailTokens = tokens - this.tailStart;
    this.tailLatents = Array.from({ length: spec.layers }, () => new Float32Array(tailTokens * this.dc));
    this.tailRopes = Array.from({ length: spec.layers }, () => new Float32Array(tailTokens * this.rw));
    this.covered = new Uint8Array(spec.layers * tokens);
    this.modality = new Uint8Array(tokens);
    this.positions = new Int32Array(3 * tokens);
  }

  /** Decodes one chunk (checks CRC, spec hash, codec, slot alignment) and hands its layers to the sink. */
  add(bytes: Uint8Array): void {
    const t0 = clock();
    const { spec, params, chunkTokens: C } = this.options;
    const chunk = decodeChunk(bytes, spec, this.options.codec.crc32c);
    const h = chunk.header;
    const where = `chunk tokens ${h.tokenStart}..${h.tokenStart + h.tokenCount - 1}, layers ${h.layerStart}..${h.layerStart + h.layerCount - 1}`;
    const c = h.codec;
    if (c.bits !== params.bits || c.group !== params.group || c.axis !== params.axis || c.rope !== params.rope) {
      throw new RuntimeError("bad_restore", `${where}: codec ${c.bits}-bit g${c.group} ${c.axis} rope ${c.rope} is not the session's`);
    }
    const end = h.tokenStart + h.tokenCount;
    if (h.tokenStart % C !== 0 || end > this.tokens) {
      throw new RuntimeError("bad_restore", `${where}: not a slot of ${C} tokens inside the restored ${this.tokens}`);
    }
    const full = h.tokenCount === C;
    const expectSealed = full && (this.options.storage ?? "quantized") === "quantized";
    if (c.sealed !== expectSealed || (!full && end !== this.tokens)) {
      throw new RuntimeError("bad_restore", `${where}: ${c.sealed ? "sealed" : "raw"} chunk of ${h.tokenCount} tokens (only the last slot may be partial and raw)`);
    }
    for (let i = 0; i < h.layerCount; i++) {
      const l = h.layerStart + i;
      const row = this.covered.subarray(l * this.tokens + h.tokenStart, l * this.tokens + end);
      if (row.some((x) => x !== 0)) throw new RuntimeError("bad_restore", `${where}: layer ${l} overlaps an earlier chunk`);
      row.fill(1);
    }
    this.modality.set(h.modality, h.tokenStart);
    this.positions.set(h.positions, 3 * h.tokenStart);
    for (let i = 0; i < h.positions.length; i++) if (h.positions[i] > this.maxPosition) this.maxPosition = h.positions[i];
    const t1 = clock();
    this.decodeMs += t1 - t0;
    chunk.layers.forEach((layer, i) => {
      const l = h.layerStart + i;
      if (layer.kind === "quantized") {
        this.sink.sealed(l, h.tokenStart, layer.latent, layer.rope);
        return;
      }
      this.sink.raw(l, h.tokenStart, layer.latent, layer.rope);
      if (end > this.tailStart) {
        // rows of the unsealed last slot (raw storage: only those from the tail start on)
        const from = Math.max(h.tokenStart, this.tailStart);
        const k = from - h.tokenStart;
        this.tailLatents[l].set(layer.latent.subarray(k * this.dc, h.tokenCount * this.dc), (from - this.tailStart) * this.dc);
        this.tailRopes[l].set(layer.rope.subarray(k * this.rw, h.tokenCount * this.rw), (from - this.tailStart) * this.rw);
      }
    });
    this.sinkMs += clock() - t1;
    this.chunkCount++;
    this.byteCount += bytes.length;
    const slot = h.tokenStart / C;
    this.slotBytes.set(slot, (this.slotBytes.get(slot) ?? 0) + bytes.length);
  }

  finish(): AssembledCache {
    const missing = this.covered.indexOf(0);
    if (missing !== -1) {
      const layer = Math.floor(missing / this.tokens);
      throw new RuntimeError("bad_restore", `restore is missing token ${missing % this.tokens} of layer ${layer}`);
    }
    return {
      tokens: this.tokens,
      modality: this.modality,
      tail: this.tailLatents.map((latent, l) => ({ latent, rope: this.tailRopes[l] })),
      tailModality: this.modality.slice(this.tailStart),
      tailPositions: this.positions.slice(3 * this.tailStart),
      nextPosition: this.maxPosition + 1,
      chunks: this.chunkCount,
      bytes: this.byteCount,
      slotBytes: this.slotBytes,
      decodeMs: this.decodeMs,
      sinkMs: this.sinkMs,
    };
  }
}
