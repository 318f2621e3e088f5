// Synthetic layer for the low-rank tests: Gaussian KV weights with GQA shapes, and anisotropic activations (a decaying
// spectrum in a random basis plus a few outlier dims, different per modality) turned into exact empirical moments.
import { SecondMomentAccumulator } from "../../convert/linalg/second-moment.ts";
import type { Matrix } from "../../convert/linalg/matrix.ts";
import type { KvDims } from "../../convert/lowrank/types.ts";
import { randomMatrix, randomOrthogonal, rng } from "../linalg/helpers.ts";

export const DIMS: KvDims = { nKv: 2, dNope: 12, dHead: 16, hidden: 64 };

export function kvWeights(seed: number, dims: KvDims = DIMS): { wkNope: Matrix; wv: Matrix } {
  return {
    wkNope: randomMatrix(dims.nKv * dims.dNope, dims.hidden, seed),
    wv: randomMatrix(dims.nKv * dims.dHead, dims.hidden, seed + 100),
  };
}

/**
 * n activation rows (f32, row-major): x = B·diag(scale)·g with a decaying scale, outlier dims and a random basis B
 * fixed by `seed`; `sampleSeed` draws a fresh sample set from the same distribution (held-out data).
 */
export function anisotropicActivations(
  n: number, d: number, seed: number, decay: number, outliers: number[], sampleSeed = seed + 7,
): Float32Array {
  const basis = randomOrthogonal(d, seed);
  const scale = Float64Array.from({ length: d }, (_, i) => decay ** i);
  const r = rng(sampleSeed);
  const out = new Float32Array(n * d);
  const g = new Float64Array(d);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < d; i++) g[i] = r.normal() * scale[i];
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += basis.data[i * d + j] * g[j];
      out[t * d + i] = s;
    }
    for (const o of outliers) out[t * d + o] += 8 * r.normal();
  }
  return out;
}

export function momentOf(rows: Float32Array, d: number): Matrix {
  const acc = new SecondMomentAccumulator(d, { batchRows: 64 });
  acc.add(rows);
  return acc.secondMoment();
}
