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
// Every control and error frame of wire format version 2 (frames.ts WIRE_FORMAT_VERSION) is encoded here: append
// control, restore header, restore trailer, append result (WebSocket answers) and error frames (docs/api.md).
import { Packr } from "msgpackr";
import type { AppendControl, AppendResult, AppendStaged, ErrorBody, MediaSpan, RestoreHeader } from "./messages.ts";
import { checkRestoreHeader, RestoreCheckError } from "./restore-check.ts";
import { encodeFrame, FrameType } from "./frames.ts";
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

/** A map whose keys are all in `required` ∪ `optional` and include every `required` one (any order). */
function fieldSet(v: unknown, required: readonly string[], optional: readonly string[], where: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array) throw new ControlDecodeError(`${where} must be a map`);
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  const unknown = keys.filter((k) => !required.includes(k) && !optional.includes(k));
  if (unknown.length > 0) throw new ControlDecodeError(`${where} has unknown field(s) ${unknown.slice(0, 4).join(", ")}`);
  const missing = required.filter((f) => !keys.includes(f));
  if (missing.length > 0) throw new ControlDecodeError(`${where} lacks ${missing.join(", ")}`);
  return o;
}

function int(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) throw new ControlDecodeError(`${where} must be an integer in [${min}, ${max}], got ${describe(v)}`);
  return v;
}

function str(v: unknown, where: string, maxLength: number): string {
  if (typeof v !== "string") throw new ControlDecodeError(`${where} must be a string, got ${describe(v)}`);
  if (v.length > maxLength) throw new ControlDecodeError(`${where} is longer than ${maxLength} characters`);
  return v;
}

function intArray(v: unknown, where: string, min: number, max: number, maxLength: number): number[] {
  if (!Array.isArray(v)) throw new ControlDecodeError(`${where} must be an array, got ${describe(v)}`);
  if (v.length > maxLength) throw new ControlDecodeError(`${where} has ${v.length} entries, above ${maxLength}`);
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v[i];
    if (typeof x !== "number" || !Number.isInteger(x) || x < min || x > max) throw new ControlDecodeError(`${where}[${i}] must be an integer in [${min}, ${max}], got ${describe(x)}`);
  }
  return v as number[];
}

function describe(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "nil";
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return "a map";
  return `${typeof v} ${String(v).slice(0, 40)}`;
}

/** Array bounds an append control is decoded against (the reader's own limits: the Worker passes limits.ts). */
export interface AppendControlLimits {
  /** Most tokens of one control message (per-token arrays are bounded by it: positions by 3×). */
  readonly maxTokens: number;
  readonly maxMedia: number;
}

const CONTROL_REQUIRED = ["expectedSeq", "tokenIds", "modality", "positions"] as const;
const CONTROL_OPTIONAL = ["media", "final", "stage"] as const;
const MEDIA_REQUIRED = ["hash", "start", "length"] as const;
const MEDIA_OPTIONAL = ["offset"] as const;
const I32_MIN = -(2 ** 31);
const I32_MAX = 2 ** 31 - 1;

/** The append control as MessagePack: the same fields as the type, integers as integers, `media` omitted when empty. */
export function encodeAppendControl(c: AppendControl): Uint8Array {
  return packr.pack({
    expectedSeq: c.expectedSeq,
    tokenIds: c.tokenIds,
    modality: c.modality,
    positions: c.positions,
    ...(c.media !== undefined && c.media.length > 0 ? { media: c.media } : {}),
    ...(c.final === false ? { final: false } : {}),
    ...(c.stage !== undefined ? { stage: c.stage } : {}),
  });
}

/**
 * Decodes an append control: field set, types and array bounds. Checks that need the session (expectedSeq against the
 * head, per-token array lengths against each other, media spans against image tokens) are the Worker's.
 */
export function decodeAppendControl(payload: Uint8Array, limits: AppendControlLimits): AppendControl {
  const o = fieldSet(unpackControl(payload), CONTROL_REQUIRED, CONTROL_OPTIONAL, "append control");
  const expectedSeq = int(o.expectedSeq, "append control.expectedSeq", 1, Number.MAX_SAFE_INTEGER);
  const tokenIds = intArray(o.tokenIds, "append control.tokenIds", 0, 0xffffffff, limits.maxTokens);
  const modality = intArray(o.modality, "append control.modality", 0, 1, limits.maxTokens);
  const positions = intArray(o.positions, "append control.positions", I32_MIN, I32_MAX, 3 * limits.maxTokens);
  let media: MediaSpan[] = [];
  if (o.media !== undefined) {
    if (!Array.isArray(o.media)) throw new ControlDecodeError(`append control.media must be an array, got ${describe(o.media)}`);
    if (o.media.length > limits.maxMedia) throw new ControlDecodeError(`append control.media has ${o.media.length} spans, above ${limits.maxMedia}`);
    media = (o.media as unknown[]).map((raw, i): MediaSpan => {
      const where = `append control.media[${i}]`;
      const m = fieldSet(raw, MEDIA_REQUIRED, MEDIA_OPTIONAL, where);
      const hash = str(m.hash, `${where}.hash`, 64);
      const start = int(m.start, `${where}.start`, 0, Number.MAX_SAFE_INTEGER);
      const length = int(m.length, `${where}.length`, 1, Number.MAX_SAFE_INTEGER);
      const offset = m.offset === undefined ? undefined : int(m.offset, `${where}.offset`, 0, I32_MAX);
      return offset === undefined ? { hash, start, length } : { hash, start, length, offset };
    });
  }
  if (o.final !== undefined && typeof o.final !== "boolean") throw new ControlDecodeError(`append control.final must be a boolean, got ${describe(o.final)}`);
  const stage = o.stage === undefined ? undefined : str(o.stage, "append control.stage", 64);
  return { expectedSeq, tokenIds, modality, positions, media, ...(o.final === false ? { final: false } : {}), ...(stage !== undefined ? { stage } : {}) };
}

/** The restore stream's last control frame: how many chunks and bytes it sent (proves the stream complete). */
export interface RestoreTrailer {
  readonly done: true;
  readonly chunks: number;
  readonly bytes: number;
}

const TRAILER_FIELDS = ["done", "chunks", "bytes"] as const;

export function encodeRestoreTrailer(t: { chunks: number; bytes: number }): Uint8Array {
  return packr.pack({ done: true, chunks: t.chunks, bytes: t.bytes });
}

export function decodeRestoreTrailer(payload: Uint8Array): RestoreTrailer {
  const o = fieldSet(unpackControl(payload), TRAILER_FIELDS, [], "restore trailer");
  if (o.done !== true) throw new ControlDecodeError(`restore trailer.done must be true, got ${describe(o.done)}`);
  return { done: true, chunks: int(o.chunks, "restore trailer.chunks", 0, Number.MAX_SAFE_INTEGER), bytes: int(o.bytes, "restore trailer.bytes", 0, Number.MAX_SAFE_INTEGER) };
}

const RESULT_FIELDS = ["seq", "tokenStart", "tokenCount", "chunksStored", "chunksReused", "bytes", "nextPosition"] as const;

/** The append result as MessagePack (the WebSocket answer to a committed turn). */
export function encodeAppendResult(r: AppendResult): Uint8Array {
  return packr.pack({
    seq: r.seq,
    tokenStart: r.tokenStart,
    tokenCount: r.tokenCount,
    chunksStored: r.chunksStored,
    chunksReused: r.chunksReused,
    bytes: r.bytes,
    nextPosition: r.nextPosition,
  });
}

export function decodeAppendResult(payload: Uint8Array): AppendResult {
  const o = fieldSet(unpackControl(payload), RESULT_FIELDS, [], "append result");
  const n = (f: (typeof RESULT_FIELDS)[number], min = 0) => int(o[f], `append result.${f}`, min, Number.MAX_SAFE_INTEGER);
  return {
    seq: n("seq", 1),
    tokenStart: n("tokenStart"),
    tokenCount: n("tokenCount", 1),
    chunksStored: n("chunksStored"),
    chunksReused: n("chunksReused"),
    bytes: n("bytes"),
    nextPosition: int(o.nextPosition, "append result.nextPosition", I32_MIN, I32_MAX + 1),
  };
}

const STAGED_FIELDS = ["staged", "stage", "seq", "tokenStart", "tokenCount", "bytes", "leaseExpiresAt"] as const;

/** The answer to a staged part as MessagePack (the WebSocket answer to a non-final part). */
export function encodeAppendStaged(r: AppendStaged): Uint8Array {
  return packr.pack({ staged: true, stage: r.stage, seq: r.seq, tokenStart: r.tokenStart, tokenCount: r.tokenCount, bytes: r.bytes, leaseExpiresAt: r.leaseExpiresAt });
}

export function decodeAppendStaged(payload: Uint8Array): AppendStaged {
  const o = fieldSet(unpackControl(payload), STAGED_FIELDS, [], "append staged");
  if (o.staged !== true) throw new ControlDecodeError(`append staged.staged must be true, got ${describe(o.staged)}`);
  const n = (f: "seq" | "tokenStart" | "tokenCount" | "bytes" | "leaseExpiresAt", min = 0) => int(o[f], `append staged.${f}`, min, Number.MAX_SAFE_INTEGER);
  return { staged: true, stage: str(o.stage, "append staged.stage", 64), seq: n("seq", 1), tokenStart: n("tokenStart"), tokenCount: n("tokenCount", 1), bytes: n("bytes"), leaseExpiresAt: n("leaseExpiresAt") };
}

/** Longest error message an error frame may carry (characters). */
export const MAX_ERROR_MESSAGE_CHARS = 16 * 1024;

export function encodeErrorBody(body: ErrorBody): Uint8Array {
  const e = body.error;
  return packr.pack({ error: { code: e.code, message: e.message, ...(e.reason !== undefined ? { reason: e.reason } : {}) } });
}

/** An error frame's `{error:{code,message,reason?}}`. The code is any string (a newer peer may add codes). */
export function decodeErrorBody(payload: Uint8Array): ErrorBody {
  const o = fieldSet(unpackControl(payload), ["error"], [], "error frame");
  const e = fieldSet(o.error, ["code", "message"], ["reason"], "error frame.error");
  const code = str(e.code, "error frame.error.code", 64) as ErrorBody["error"]["code"];
  const message = str(e.message, "error frame.error.message", MAX_ERROR_MESSAGE_CHARS);
  const reason = e.reason === undefined ? undefined : str(e.reason, "error frame.error.reason", 64);
  return { error: reason === undefined ? { code, message } : { code, message, reason } };
}

/** A control frame (type 1) around an encoded control message. */
export function controlFrame(payload: Uint8Array): Uint8Array {
  return encodeFrame(FrameType.control, payload);
}

/** An error frame (type 4). */
export function errorFrame(body: ErrorBody): Uint8Array {
  return encodeFrame(FrameType.error, encodeErrorBody(body));
}
