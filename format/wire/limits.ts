// Per-request limits of an append that the SDK must know to split a long turn into parts (docs/api.md "Turns of any
// length"); the Worker enforces them (worker/limits.ts re-exports them with the reasons for their values).

/** Request body of one append: Cloudflare's Free/Pro plan cap (100 MB). */
export const MAX_APPEND_BODY_BYTES = 100_000_000;

/** Tokens of one append request: 8,192 Qwen2.5-VL-7B tokens at d_kv 64 int4 are ≈ 92 MB of chunks, just inside the body cap. */
export const MAX_TURN_TOKENS = 8192;

/**
 * Tokens of one turn appended in several parts: its per-token arrays (12 B of positions + 4 B of ids + 1 B per token)
 * are one SQLite row of the SessionObject at commit, and a Durable Object row is at most 2 MB: 98,304 × 17 B ≈ 1.67 MB.
 */
export const MAX_STAGED_TURN_TOKENS = 12 * MAX_TURN_TOKENS;
