// Checks of a restore stream against its own header, shared by every reader of `GET /v1/sessions/:id/chunks`: the
// header must be a complete, self-consistent RestoreHeader, and each chunk that follows must be the one the header lists
// at its place (size, storage, token and layer range, read from the chunk's fixed header). A reader that trusted the
// header would assemble an empty or foreign cache without a word; these checks turn that into a format error.
import { FIXED_HEADER_BYTES, WIRE_STORAGE } from "../chunk/constants.ts";
import { HEADER_OFFSETS } from "../chunk/header.ts";
import { MAX_CHUNK_BYTES } from "../chunk/types.ts";
import type { RestoreChunkInfo, RestoreHeader } from "./messages.ts";
import { MlaError } from "../errors.ts";

/** A header or chunk that does not fit the stream's header; readers map it to their own error type. */
export class RestoreCheckError extends MlaError<"bad_header"> {
  override readonly name = "RestoreCheckError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("bad_header", message, options);
  }
}

/** Token positions are u32 in chunk headers. */
const MAX_TOKENS = 0xffffffff;
const MAX_LAYERS = 1 << 16;
const KEY = /^[0-9a-f]{64}$/;

const HEADER_FIELDS = ["head", "tokens", "from", "to", "layerStart", "layerEnd", "chunks"] as const;
const CHUNK_FIELDS = ["slot", "tokenStart", "tokenCount", "layerStart", "layerCount", "sealed", "bytes", "key"] as const;

function int(o: Record<string, unknown>, field: string, max: number, where: string): number {
  const v = o[field];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new RestoreCheckError(`${where}.${field} must be an integer in 0..${max}, got ${JSON.stringify(v) ?? "nothing"}`);
  }
  return v;
}

function record(v: unknown, fields: readonly string[], where: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new RestoreCheckError(`${where} must be an object`);
  const o = v as Record<string, unknown>;
  for (let i = 0; i < fields.length; i++) {
    if (!(fields[i] in o)) throw new RestoreCheckError(`${where} lacks ${fields.filter((f) => !(f in o)).join(", ")}`);
  }
  return o;
}

/**
 * The restore header in `json`, checked: every field present with the right type and range, head and tokens agree
 * (every turn has a token: head 0 ⇔ tokens 0), from ≤ to ≤ tokens, and each listed chunk is a well-formed entry inside
 * the session's tokens and overlapping the requested layers, slot by slot in stream order, keys distinct. A full-length restore's
 * chunks must reach the last token.
 */
export function checkRestoreHeader(json: unknown): RestoreHeader {
  const o = record(json, HEADER_FIELDS, "restore header");
  const head = int(o, "head", Number.MAX_SAFE_INTEGER, "restore header");
  const tokens = int(o, "tokens", MAX_TOKENS, "restore header");
  const from = int(o, "from", MAX_TOKENS, "restore header");
  const to = int(o, "to", MAX_TOKENS, "restore header");
  const layerStart = int(o, "layerStart", MAX_LAYERS, "restore header");
  const layerEnd = int(o, "layerEnd", MAX_LAYERS, "restore header");
  if ((head === 0) !== (tokens === 0)) throw new RestoreCheckError(`restore header says head ${head} with ${tokens} tokens: every turn has tokens`);
  if (from > to || to > tokens) throw new RestoreCheckError(`restore header range ${from}..${to} is not inside the session's ${tokens} tokens`);
  if (layerStart > layerEnd) throw new RestoreCheckError(`restore header layers ${layerStart}..${layerEnd} are reversed`);
  if (!Array.isArray(o.chunks)) throw new RestoreCheckError("restore header.chunks must be an array");
  const keys = new Set<string>();
  let lastSlot = -1;
  let reach = 0;
  const chunks: RestoreChunkInfo[] = o.chunks.map((v: unknown, i): RestoreChunkInfo => {
    const where = `restore header.chunks[${i}]`;
    const c = record(v, CHUNK_FIELDS, where);
    const info: RestoreChunkInfo = {
      slot: int(c, "slot", MAX_TOKENS, where),
      tokenStart: int(c, "tokenStart", MAX_TOKENS, where),
      tokenCount: int(c, "tokenCount", MAX_TOKENS, where),
      layerStart: int(c, "layerStart", MAX_LAYERS, where),
      layerCount: int(c, "layerCount", MAX_LAYERS, where),
      sealed: c.sealed as boolean,
      bytes: int(c, "bytes", MAX_CHUNK_BYTES, where),
      key: c.key as string,
    };
    if (typeof c.sealed !== "boolean") throw new RestoreCheckError(`${where}.sealed must be a boolean`);
    if (typeof c.key !== "string" || !KEY.test(c.key)) throw new RestoreCheckError(`${where}.key must be 64 lowercase hex digits`);
    if (keys.has(info.key)) throw new RestoreCheckError(`${where} repeats key ${info.key}`);
    keys.add(info.key);
    if (info.bytes < FIXED_HEADER_BYTES) throw new RestoreCheckError(`${where}.bytes ${info.bytes} is shorter than a chunk header`);
    if (info.tokenCount < 1 || info.tokenStart + info.tokenCount > tokens) throw new RestoreCheckError(`${where} tokens ${info.tokenStart}+${info.tokenCount} are outside the session's ${tokens}`);
    // Every chunk overlapping the requested layers is listed (docs/api.md): a chunk is never cut, so a layers= query
    // inside a chunk's range gets the whole chunk.
    if (info.layerCount < 1 || info.layerStart >= layerEnd || info.layerStart + info.layerCount <= layerStart || info.layerStart + info.layerCount > MAX_LAYERS) {
      throw new RestoreCheckError(`${where} layers ${info.layerStart}+${info.layerCount} do not overlap the requested ${layerStart}..${layerEnd}`);
    }
    if (info.slot < lastSlot) throw new RestoreCheckError(`${where} slot ${info.slot} comes after slot ${lastSlot}`);
    lastSlot = info.slot;
    reach = Math.max(reach, info.tokenStart + info.tokenCount);
    return info;
  });
  if (from === 0 && to === tokens && layerEnd > layerStart && reach !== tokens) {
    throw new RestoreCheckError(`restore header claims ${tokens} tokens but its chunks cover ${reach}`);
  }
  return { head, tokens, from, to, layerStart, layerEnd, chunks };
}

/** Checks that `chunk` is the chunk `info` lists: its size, storage, token range and layer range (fixed header). */
export function checkRestoreChunk(chunk: Uint8Array, info: RestoreChunkInfo, index: number): void {
  const where = `restore chunk ${index} (key ${info.key.slice(0, 12)}…)`;
  if (chunk.length !== info.bytes) throw new RestoreCheckError(`${where} has ${chunk.length} B, its header entry ${info.bytes} B`);
  const v = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const o = HEADER_OFFSETS;
  const got = {
    sealed: v.getUint8(o.storage) === WIRE_STORAGE.sealed,
    tokenStart: v.getUint32(o.tokenStart, true),
    tokenCount: v.getUint32(o.tokenCount, true),
    layerStart: v.getUint32(o.layerStart, true),
    layerCount: v.getUint32(o.layerCount, true),
  };
  const want = { sealed: info.sealed, tokenStart: info.tokenStart, tokenCount: info.tokenCount, layerStart: info.layerStart, layerCount: info.layerCount };
  if (Object.keys(want).some((k) => got[k as keyof typeof got] !== want[k as keyof typeof want])) {
    throw new RestoreCheckError(`${where} is not the chunk its header lists: it carries ${JSON.stringify(got)}, the header ${JSON.stringify(want)}`);
  }
}
