// What a committed append reports to telemetry: chunks newly stored (with stored and bf16-equivalent bytes) and chunks
// found already stored (dedupe hits). Tokens count per slot, once: a slot whose every chunk was a hit is a hit.
import type { Env } from "../env.ts";
import { recordEvent, type WaitUntil } from "../telemetry/index.ts";

/** One chunk put of an append: its slot, tokens, sizes, and whether the row was new (false = dedupe hit). */
export interface ChunkOutcome {
  readonly slot: number;
  readonly tokens: number;
  readonly bytes: number;
  readonly bytesUncompressed: number;
  readonly created: boolean;
}

/** Records the chunks_stored and dedupe_hit events of one committed append (none when it uploaded nothing). */
export function recordAppendChunks(env: Env, ctx: WaitUntil, sessionId: string, outcomes: readonly ChunkOutcome[]): void {
  const slotTokens = new Map<number, number>();
  const slotAllHit = new Map<number, boolean>();
  for (const o of outcomes) {
    slotTokens.set(o.slot, o.tokens);
    slotAllHit.set(o.slot, (slotAllHit.get(o.slot) ?? true) && !o.created);
  }
  let hitTokens = 0;
  let storedTokens = 0;
  for (const [slot, tokens] of slotTokens) {
    if (slotAllHit.get(slot) === true) hitTokens += tokens;
    else storedTokens += tokens;
  }
  const stored = outcomes.filter((o) => o.created);
  const hits = outcomes.filter((o) => !o.created);
  if (stored.length > 0) {
    recordEvent(env, ctx, {
      kind: "chunks_stored",
      sessionId,
      chunks: stored.length,
      tokens: storedTokens,
      bytesStored: stored.reduce((s, o) => s + o.bytes, 0),
      bytesUncompressed: stored.reduce((s, o) => s + o.bytesUncompressed, 0),
    });
  }
  if (hits.length > 0) {
    recordEvent(env, ctx, { kind: "dedupe_hit", sessionId, chunks: hits.length, tokens: hitTokens, bytesSaved: hits.reduce((s, o) => s + o.bytes, 0) });
  }
}
