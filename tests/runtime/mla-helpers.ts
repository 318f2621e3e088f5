// Deterministic random kept pairs and lossy factorisations for MLA tests (valid models, not good ones).

import type { TextModelConfig } from "../../checkpoint/config.ts";
import type { KvFactoriser } from "../../runtime/mla/build.ts";
import { mulberry32 as rng } from "../helpers/mulberry32.ts";

/** Random kept pairs: `count` of the 16 per (layer, KV head), ascending. */
export function randomPairs(config: TextModelConfig, seed: number, count: number): number[][][] {
  const rand = rng(seed);
  return Array.from({ length: config.numLayers }, () =>
    Array.from({ length: config.numKvHeads }, () => {
      const all = Array.from({ length: config.headDim / 2 }, (_, i) => i);
      for (let i = all.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [all[i], all[j]] = [all[j], all[i]];
      }
      return all.slice(0, count).sort((a, b) => a - b);
    }),
  );
}

/**
 * A lossy but valid factorisation with D_c = n_kv·dKv: random down projections per modality (scaled like the weights),
 * up = least-effort random maps, and image biases that differ from text biases, so β and Pᵐ·b_uv matter.
 */
export function randomLowRank(config: TextModelConfig, seed: number, dKv: number, spaces: 1 | 2): KvFactoriser {
  return (inp) => {
    const rand = rng(seed + inp.layer);
    const D = config.numKvHeads * dKv;
    const make = (biasShift: number) => {
      const downKv = Float64Array.from({ length: D * inp.hidden }, () => (rand() - 0.5) * 0.3);
      const kRows = inp.wKNope.length / inp.hidden;
      const vRows = inp.wV.length / inp.hidden;
      const upK = Float64Array.from({ length: kRows * D }, () => (rand() - 0.5) * 0.5);
      const upV = Float64Array.from({ length: vRows * D }, () => (rand() - 0.5) * 0.5);
      const upKBias = inp.bKNope === null ? null : Float64Array.from(inp.bKNope, (b) => b + biasShift * (rand() - 0.5));
      const upVBias = inp.bV === null ? null : Float64Array.from(inp.bV, (b) => b + biasShift * (rand() - 0.5));
      return { downKv, upK, upV, upKBias, upVBias };
    };
    return spaces === 1 ? { shared: make(0) } : { text: make(0), image: make(1.5) };
  };
}

