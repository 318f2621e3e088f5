// Chunk keys: a SHA-256 (WebCrypto) hash chain over slots, full 32 bytes in hex, never truncated (LMCache #3301).
//   prefix_s = SHA-256("mla-edge/slot/v1" ‖ prefix_{s−1} ‖ model id ‖ conversion id ‖ spec hash ‖ codec ‖ C ‖ s
//                      ‖ token ids, modality, positions of the slot's tokens ‖ media (hash, slot position, offset in item,
//                      count) ‖ tenant salt)
//   key = SHA-256("mla-edge/chunk/v1" ‖ prefix_s ‖ sealed ‖ layer range ‖ tenant salt)
// so equal prefixes (system prompt + same image) of one tenant give equal keys and other tenants never do.
import type { CodecParams } from "../format/codec/types.ts";
import { WIRE_AXIS, WIRE_ROPE } from "../format/chunk/constants.ts";
import { bytesToHex } from "../format/hash/spec-hash.ts";
import type { MediaSpan } from "../format/wire/messages.ts";
import { isWellFormedText } from "../format/wire/well-formed.ts";

export const KEY_HEX_LENGTH = 64;
export const ZERO_PREFIX = "0".repeat(KEY_HEX_LENGTH);

/** What every key of a session is bound to. */
export interface KeyContext {
  readonly modelId: string;
  readonly conversion: string;
  readonly specHash: string;
  readonly codec: CodecParams;
  /** Raw sessions never seal: their full slots are raw chunks. */
  readonly storage: "quantized" | "raw";
  readonly chunkTokens: number;
  readonly salt: Uint8Array;
}

/** Tokens of one slot (or of the filled part of the last slot). */
export interface SlotTokens {
  readonly slot: number;
  readonly tokenIds: Uint32Array;
  readonly modality: Uint8Array;
  readonly positions: Int32Array;
  /** Media spans of the session; only their overlap with the slot enters the key. */
  readonly media: readonly MediaSpan[];
}

class KeyWriter {
  #parts: Uint8Array[] = [];
  #length = 0;
  bytes(b: Uint8Array): this {
    this.#parts.push(b);
    this.#length += b.length;
    return this;
  }
  u32(v: number): this {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    return this.bytes(b);
  }
  /** Length-prefixed UTF-8, so field boundaries are unambiguous. Ill-formed text would encode lossily: never hashed. */
  str(s: string): this {
    if (!isWellFormedText(s)) throw new Error("chunk key input is not well-formed UTF-16: it must be refused where it enters");
    const b = new TextEncoder().encode(s);
    return this.u32(b.length).bytes(b);
  }
  hex(h: string): this {
    const b = new Uint8Array(h.length / 2);
    for (let i = 0; i < b.length; i++) b[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
    return this.bytes(b);
  }
  async digest(): Promise<string> {
    const all = new Uint8Array(this.#length);
    let at = 0;
    for (const p of this.#parts) {
      all.set(p, at);
      at += p.length;
    }
    return bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-256", all)));
  }
}

const asBytes = (a: Uint32Array | Int32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** The (item hash, position in slot, offset in item, count) of every media span overlapping the slot, in slot order. */
export function mediaInSlot(media: readonly MediaSpan[], slotStart: number, slotEnd: number): Array<[string, number, number, number]> {
  const out: Array<[string, number, number, number]> = [];
  for (const m of media) {
    const from = Math.max(m.start, slotStart);
    const to = Math.min(m.start + m.length, slotEnd);
    if (from < to) out.push([m.hash, from - slotStart, (m.offset ?? 0) + (from - m.start), to - from]);
  }
  return out.sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** prefix_s from prefix_{s−1} (ZERO_PREFIX for slot 0). Little-endian integers throughout (Int32Array/Uint32Array views). */
export function slotPrefix(ctx: KeyContext, previous: string, t: SlotTokens): Promise<string> {
  const n = t.tokenIds.length;
  const slotStart = t.slot * ctx.chunkTokens;
  const w = new KeyWriter()
    .str("mla-edge/slot/v1")
    .hex(previous)
    .str(ctx.modelId)
    .str(ctx.conversion)
    .hex(ctx.specHash)
    .u32(ctx.codec.bits)
    .u32(ctx.codec.group)
    .u32(WIRE_AXIS[ctx.codec.axis])
    .u32(WIRE_ROPE[ctx.codec.rope])
    .u32(ctx.chunkTokens)
    .str(ctx.storage)
    .u32(t.slot)
    .u32(n)
    .bytes(asBytes(t.tokenIds))
    .bytes(t.modality)
    .bytes(asBytes(t.positions));
  const media = mediaInSlot(t.media, slotStart, slotStart + n);
  w.u32(media.length);
  for (const [hash, pos, offset, count] of media) w.hex(hash).u32(pos).u32(offset).u32(count);
  return w.bytes(ctx.salt).digest();
}

/** Key of one chunk (a layer range, sealed or raw) of a slot. */
export function chunkKey(ctx: KeyContext, prefix: string, sealed: boolean, layerStart: number, layerCount: number): Promise<string> {
  return new KeyWriter().str("mla-edge/chunk/v1").hex(prefix).u32(sealed ? 1 : 0).u32(layerStart).u32(layerCount).bytes(ctx.salt).digest();
}

/** Chunk rows of a tenant are spread over this many ChunkObjects. */
export const CHUNK_SHARDS = 16;

/**
 * The shard of a hash's first hex digit. Chunks are placed by their row group's anchor (worker/row-groups.ts); rows
 * stored before row groups were placed by their own key (the migrated `shard` of their refs).
 */
export function shardOf(hash: string): number {
  return parseInt(hash[0], 16) % CHUNK_SHARDS;
}

export function chunkObjectName(tenant: string, shard: number): string {
  return `${tenant}:chunks:${shard}`;
}

export function sessionObjectName(tenant: string, sessionId: string): string {
  return `${tenant}:${sessionId}`;
}
