// Validation of an append's control message (frame type 1). Malformed metadata is refused, never cached: every image
// token must lie in exactly one media span, so two different images can never share a chunk key.
import type { AppendControl, MediaSpan } from "../../format/wire/messages.ts";
import { badRequest } from "../errors.ts";
import { MAX_MEDIA_PER_TURN, MAX_TURN_TOKENS } from "../limits.ts";

/** A validated control message with per-token arrays in typed form. */
export interface TurnInput {
  readonly expectedSeq: number;
  readonly tokenIds: Uint32Array;
  readonly modality: Uint8Array;
  readonly positions: Int32Array;
  readonly media: readonly MediaSpan[];
}

const HASH_HEX = /^[0-9a-f]{64}$/;

function intArray(v: unknown, name: string, min: number, max: number, length?: number): number[] {
  if (!Array.isArray(v)) throw badRequest(`${name} must be an array`);
  if (length !== undefined && v.length !== length) throw badRequest(`${name} has ${v.length} entries, expected ${length}`);
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v[i];
    if (typeof x !== "number" || !Number.isInteger(x) || x < min || x > max) throw badRequest(`${name}[${i}] must be an integer in [${min}, ${max}]`);
  }
  return v as number[];
}

/** Checks the control message of a turn starting at session token `tokenStart`. */
export function parseControl(value: unknown, tokenStart: number): TurnInput {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw badRequest("control frame must be a JSON object");
  const c = value as Partial<Record<keyof AppendControl, unknown>>;
  if (typeof c.expectedSeq !== "number" || !Number.isInteger(c.expectedSeq) || c.expectedSeq < 1) {
    throw badRequest("expectedSeq must be an integer ≥ 1 (the manifest head + 1)");
  }
  const ids = intArray(c.tokenIds, "tokenIds", 0, 0xffffffff);
  const n = ids.length;
  if (n < 1 || n > MAX_TURN_TOKENS) throw badRequest(`a turn has 1 to ${MAX_TURN_TOKENS} tokens, got ${n}: split longer input into several turns`);
  const modality = intArray(c.modality, "modality", 0, 1, n);
  const positions = intArray(c.positions, "positions", -(2 ** 31), 2 ** 31 - 1, 3 * n);
  const media = parseMedia(c.media ?? [], tokenStart, n);
  const covered = new Uint8Array(n);
  for (const m of media) {
    for (let i = m.start - tokenStart; i < m.start - tokenStart + m.length; i++) {
      if (modality[i] !== 1) throw badRequest(`media span at token ${m.start} covers token ${tokenStart + i}, which is not an image token`);
      if (covered[i]++ !== 0) throw badRequest(`token ${tokenStart + i} lies in two media spans`);
    }
  }
  const bare = modality.findIndex((m, i) => m === 1 && covered[i] === 0);
  if (bare >= 0) throw badRequest(`image token ${tokenStart + bare} lies in no media span: image tokens must name their media hash`);
  return {
    expectedSeq: c.expectedSeq,
    tokenIds: Uint32Array.from(ids),
    modality: Uint8Array.from(modality),
    positions: Int32Array.from(positions),
    media,
  };
}

function parseMedia(v: unknown, tokenStart: number, n: number): MediaSpan[] {
  if (!Array.isArray(v)) throw badRequest("media must be an array");
  if (v.length > MAX_MEDIA_PER_TURN) throw badRequest(`at most ${MAX_MEDIA_PER_TURN} media spans per turn`);
  return v.map((raw: unknown, i): MediaSpan => {
    if (typeof raw !== "object" || raw === null) throw badRequest(`media[${i}] must be an object`);
    const m = raw as Record<string, unknown>;
    if (typeof m.hash !== "string" || !HASH_HEX.test(m.hash)) throw badRequest(`media[${i}].hash must be 64 lower-case hex digits (SHA-256)`);
    const [start] = intArray([m.start], `media[${i}].start`, tokenStart, tokenStart + n - 1);
    const [length] = intArray([m.length], `media[${i}].length`, 1, tokenStart + n - start);
    const [offset] = intArray([m.offset ?? 0], `media[${i}].offset`, 0, 0x7fffffff);
    return { hash: m.hash, start, length, offset };
  });
}
