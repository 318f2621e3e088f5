// Fixed histogram bucket bounds (upper bounds, inclusive, as Prometheus `le`). Fixed so memory per series is constant
// and so series from different isolates and restarts add up bucket by bucket.

/**
 * Request latency, ms. Dense below 20 ms because appends and manifests through a DO take 5–15 ms locally
 * (docs platform.md §10), so p50 interpolation stays within ~25 % of the true value; coarse up to 30 s (the CPU limit).
 */
export const LATENCY_BOUNDS_MS: readonly number[] = [
  0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 10, 12.5, 15, 20, 25, 30, 40, 50, 75, 100, 150, 250, 500, 750, 1000, 2500, 5000, 10_000,
  30_000,
];

/** Client TTFT, ms: in-browser prefill of a restored session runs 10 ms to tens of seconds. */
export const TTFT_BOUNDS_MS: readonly number[] = [
  10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10_000, 20_000, 60_000,
];

/** Client time per output token, ms: WebGPU decode runs ~10–300 ms/token (transformers.js #1741). */
export const TPOT_BOUNDS_MS: readonly number[] = [1, 2.5, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2500];

/**
 * Client device KV cache, bytes: ×4 steps from 64 KiB (a short chat of a small model) to 16 GiB (a 7B model's bf16
 * cache near its context limit), so MLA + int4 sessions and their bf16 equivalents land in different buckets.
 */
export const DEVICE_KV_BOUNDS_BYTES: readonly number[] = Array.from({ length: 10 }, (_, i) => 65_536 * 4 ** i);

/** Client restore phases (fetch, decode, upload), ms. */
export const RESTORE_PHASE_BOUNDS_MS: readonly number[] = [
  1, 2.5, 5, 10, 25, 50, 75, 100, 150, 250, 500, 750, 1000, 2500, 5000, 10_000, 30_000,
];
