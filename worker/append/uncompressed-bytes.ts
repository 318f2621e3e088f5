// The uncompressed equivalent of stored KV: what the original model's bf16 GQA K/V cache would take for the same tokens
// and layers (format/size/bytes-per-token.ts `originalBf16`, per layer). Manifests and telemetry compare against it.
import type { CacheSpec } from "../../format/cache-spec.ts";

/** bf16 K + V bytes of `tokens` tokens over `layers` layers: 2 · layers · n_kv · d_h · 2 per token. */
export function bf16GqaBytes(spec: Pick<CacheSpec, "kvHeads" | "headDim">, tokens: number, layers: number): number {
  return tokens * layers * 2 * spec.kvHeads * spec.headDim * 2;
}
