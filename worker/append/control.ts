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

/**
 * Checks the control message of a turn starting at session token `tokenStart`. The MessagePack decoder
 * (format/wire/control-msgpack.ts) has checked field set, types and array bounds; these are the checks that relate
 * fields to each other and to the session.
 */
export function parseControl(c: AppendControl, tokenStart: number): TurnInput {
  const n = c.tokenIds.length;
  if (n < 1 || n > MAX_TURN_TOKENS) throw badRequest(`a turn has 1 to ${MAX_TURN_TOKENS} tokens, got ${n}: split longer input into several turns`);
  if (c.modality.length !== n) throw badRequest(`modality has ${c.modality.length} entries, expected ${n}`);
  if (c.positions.length !== 3 * n) throw badRequest(`positions has ${c.positions.length} entries, expected ${3 * n}`);
  const modality = Uint8Array.from(c.modality);
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
    tokenIds: Uint32Array.from(c.tokenIds),
    modality,
    positions: Int32Array.from(c.positions),
    media,
  };
}

function parseMedia(v: readonly MediaSpan[], tokenStart: number, n: number): MediaSpan[] {
  if (v.length > MAX_MEDIA_PER_TURN) throw badRequest(`at most ${MAX_MEDIA_PER_TURN} media spans per turn`);
  return v.map((m, i): MediaSpan => {
    if (!HASH_HEX.test(m.hash)) throw badRequest(`media[${i}].hash must be 64 lower-case hex digits (SHA-256)`);
    if (m.start < tokenStart || m.start > tokenStart + n - 1) throw badRequest(`media[${i}].start must be an integer in [${tokenStart}, ${tokenStart + n - 1}]`);
    if (m.length < 1 || m.length > tokenStart + n - m.start) throw badRequest(`media[${i}].length must be an integer in [1, ${tokenStart + n - m.start}]`);
    return { hash: m.hash, start: m.start, length: m.length, offset: m.offset ?? 0 };
  });
}
