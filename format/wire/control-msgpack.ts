// MessagePack encoding of the framed protocol's control messages (issue 22), starting with the one that grows with the
// session: the restore header, one entry per chunk. Keys travel as 32 raw bytes (`bin 8`), integers as integers, no
// UTF-8 round trip. One Packr is reused (shared/docs/platform.md §7: a module-level pack() is ~25× slower). Keys are
// plain Uint8Array, which msgpackr writes as standard `bin` without `moreTypes` (that option's ext 0x74 is for
// Float32Array & co., which no control message carries), so any MessagePack reader can decode these frames.
//
// The encoder trusts its input (keys are 64 lowercase hex digits, as every RestoreHeader's are); decoding is strict: malformed MessagePack, trailing bytes, a value that is not a map, unknown or missing fields, wrong
// types and arrays above their limit are a ControlDecodeError; readers map it to their own error (SDK
// StreamFormatError, Worker 400 bad_request).
//
// Not wired into the Worker and the SDK yet: the frames on the wire are still UTF-8 JSON (docs/api.md).
import { Packr } from "msgpackr";
import type { RestoreHeader } from "./messages.ts";
import { checkRestoreHeader, RestoreCheckError } from "./restore-check.ts";
import { MlaError } from "../errors.ts";

export class ControlDecodeError extends MlaError<"bad_control"> {
  override readonly name = "ControlDecodeError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("bad_control", message, options);
  }
}

/**
 * The one Packr. Records (msgpackr's structure extension: each map shape is written once, then every entry is a short
 * array of values) pay off on the header's thousands of same-shaped chunk entries: less than half the bytes of plain
 * maps and several times faster to decode. The structure definitions travel inside each message (no state shared
 * between messages or with the peer), and decoded records are plain objects, so the strict field checks below see
 * every key. Bytes stay standard `bin`.
 */
const packr = new Packr({ useRecords: true, mapsAsObjects: true });

/** Chunk entries one restore header may list (a 128K-token Qwen2.5-VL-7B session at C = 64 lists 2,048 slots × ranges). */
export const MAX_RESTORE_HEADER_CHUNKS = 1 << 16;

const HEADER_FIELDS = ["head", "tokens", "from", "to", "layerStart", "layerEnd", "chunks"] as const;
const CHUNK_FIELDS = ["slot", "tokenStart", "tokenCount", "layerStart", "layerCount", "sealed", "bytes", "key"] as const;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
const nibble = (c: number): number => (c <= 57 ? c - 48 : c - 87); // '0'-'9', 'a'-'f' (keys are lowercase hex)

function hexToKey(hex: string): Uint8Array {
  const b = new Uint8Array(32);
  for (let i = 0; i < 32; i++) b[i] = (nibble(hex.charCodeAt(2 * i)) << 4) | nibble(hex.charCodeAt(2 * i + 1));
  return b;
}

const HEX_CODES = new Uint8Array(512);
for (let i = 0; i < 256; i++) HEX_CODES.set([HEX[i].charCodeAt(0), HEX[i].charCodeAt(1)], 2 * i);
const ascii = new Uint8Array(64);
const latin1 = new TextDecoder("latin1");

function keyToHex(b: Uint8Array): string {
  for (let i = 0; i < 32; i++) {
    ascii[2 * i] = HEX_CODES[2 * b[i]];
    ascii[2 * i + 1] = HEX_CODES[2 * b[i] + 1];
  }
  return latin1.decode(ascii);
}

/** One MessagePack value from `payload`, which it must fill exactly. */
export function unpackControl(payload: Uint8Array): unknown {
  let v: unknown;
  try {
    v = packr.unpack(payload);
  } catch (e) {
    throw new ControlDecodeError(`control frame is not one MessagePack value: ${(e as Error).message.slice(0, 120)}`);
  }
  return v;
}

export function packControl(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** The restore header as MessagePack: every field as in JSON, but each chunk key as 32 raw bytes. */
export function encodeRestoreHeaderMsgpack(h: RestoreHeader): Uint8Array {
  return packr.pack({
    head: h.head,
    tokens: h.tokens,
    from: h.from,
    to: h.to,
    layerStart: h.layerStart,
    layerEnd: h.layerEnd,
    chunks: h.chunks.map((c) => ({
      slot: c.slot,
      tokenStart: c.tokenStart,
      tokenCount: c.tokenCount,
      layerStart: c.layerStart,
      layerCount: c.layerCount,
      sealed: c.sealed,
      bytes: c.bytes,
      key: hexToKey(c.key),
    })),
  });
}

/** The map's own keys must be exactly `fields`, in that order (the order the encoder writes and docs/api.md lists). */
function exactFields(v: unknown, fields: readonly string[], where: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array) throw new ControlDecodeError(`${where} must be a map`);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  let same = keys.length === fields.length;
  for (let i = 0; same && i < keys.length; i++) same = keys[i] === fields[i];
  if (!same) {
    const unknown = keys.filter((k) => !fields.includes(k));
    if (unknown.length > 0) throw new ControlDecodeError(`${where} has unknown field(s) ${unknown.slice(0, 4).join(", ")}`);
    const missing = fields.filter((f) => !keys.includes(f));
    if (missing.length > 0) throw new ControlDecodeError(`${where} lacks ${missing.join(", ")}`);
    throw new ControlDecodeError(`${where} has its fields out of order (${keys.join(", ")})`);
  }
  return o;
}

/** Decodes and checks a MessagePack restore header (the checks of restore-check.ts, plus exact field sets). */
export function decodeRestoreHeaderMsgpack(payload: Uint8Array): RestoreHeader {
  const o = exactFields(unpackControl(payload), HEADER_FIELDS, "restore header");
  if (!Array.isArray(o.chunks)) throw new ControlDecodeError("restore header.chunks must be an array");
  if (o.chunks.length > MAX_RESTORE_HEADER_CHUNKS) throw new ControlDecodeError(`restore header lists ${o.chunks.length} chunks, above ${MAX_RESTORE_HEADER_CHUNKS}`);
  // The decoded objects are this call's own: keys are turned into hex in place.
  const chunks: unknown[] = o.chunks;
  for (let i = 0; i < chunks.length; i++) {
    const c = exactFields(chunks[i], CHUNK_FIELDS, `restore header.chunks[${i}]`);
    if (!(c.key instanceof Uint8Array) || c.key.length !== 32) throw new ControlDecodeError(`restore header.chunks[${i}].key must be 32 bytes`);
    c.key = keyToHex(c.key);
  }
  try {
    return checkRestoreHeader(o);
  } catch (e) {
    if (e instanceof RestoreCheckError) throw new ControlDecodeError(e.message);
    throw e;
  }
}
