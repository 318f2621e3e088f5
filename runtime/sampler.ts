// Next-token choice shared by every runtime (CPU reference now, WebGPU later, which must mirror it bit for bit on the
// same logits): temperature 0 is argmax (lowest id on ties); otherwise softmax(logits / T) restricted to the top-k ids
// then to the smallest prefix of them whose probability reaches top-p, sampled with a seeded PRNG (mulberry32), so a
// seed reproduces a run.

import { MlaError } from "../format/errors.ts";

export class SamplerError extends MlaError<"bad_sampling"> {
  override readonly name = "SamplerError";
  constructor(message: string) {
    super("bad_sampling", message);
  }
}

export interface SamplingParams {
  /** 0 = greedy. */
  readonly temperature: number;
  /** Keep only the k largest logits; 0 or absent = all. */
  readonly topK?: number;
  /** Nucleus: keep the smallest set of the largest probabilities summing to ≥ topP; 1 or absent = all. */
  readonly topP?: number;
  /** PRNG seed (uint32); default 0. */
  readonly seed?: number;
}

export function checkSamplingParams(p: SamplingParams): void {
  if (!Number.isFinite(p.temperature) || p.temperature < 0) throw new SamplerError(`temperature must be ≥ 0, got ${p.temperature}`);
  if (p.topK !== undefined && (!Number.isSafeInteger(p.topK) || p.topK < 0)) throw new SamplerError(`top-k must be an integer ≥ 0, got ${p.topK}`);
  if (p.topP !== undefined && !(p.topP > 0 && p.topP <= 1)) throw new SamplerError(`top-p must be in (0, 1], got ${p.topP}`);
  if (p.seed !== undefined && (!Number.isSafeInteger(p.seed) || p.seed < 0)) throw new SamplerError(`seed must be an integer ≥ 0, got ${p.seed}`);
}

/** mulberry32: a small, well-mixed 32-bit PRNG; next() ∈ [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The k largest entries of logits[offset .. offset + vocab) as [id, value], descending (lower id first on ties). */
export function topLogits(logits: Float32Array, k: number, offset = 0, vocab = logits.length - offset): [number, number][] {
  const ids: number[] = [];
  for (let i = 0; i < vocab; i++) {
    const v = logits[offset + i];
    if (ids.length < k || v > logits[offset + ids[ids.length - 1]]) {
      let j = ids.length < k ? ids.length : ids.length - 1;
      if (ids.length < k) ids.push(i);
      while (j > 0 && logits[offset + ids[j - 1]] < v) {
        ids[j] = ids[j - 1];
        j--;
      }
      ids[j] = i;
    }
  }
  return ids.map((i) => [i, logits[offset + i]]);
}

export class Sampler {
  private readonly rand: () => number;
  constructor(readonly params: SamplingParams) {
    checkSamplingParams(params);
    this.rand = mulberry32(params.seed ?? 0);
  }

  /** Chooses the next id from the row logits[offset .. offset + vocab). */
  next(logits: Float32Array, offset = 0, vocab = logits.length - offset): number {
    const { temperature } = this.params;
    if (temperature === 0) {
      let best = 0;
      for (let i = 1; i < vocab; i++) if (logits[offset + i] > logits[offset + best]) best = i;
      return best;
    }
    const k = this.params.topK !== undefined && this.params.topK > 0 ? Math.min(this.params.topK, vocab) : vocab;
    let cand: number[];
    if (k < vocab) cand = topLogits(logits, k, offset, vocab).map(([i]) => i);
    else {
      cand = Array.from({ length: vocab }, (_, i) => i);
      cand.sort((a, b) => logits[offset + b] - logits[offset + a] || a - b);
    }
    const max = logits[offset + cand[0]];
    const w = cand.map((i) => Math.exp((logits[offset + i] - max) / temperature));
    let z = w.reduce((s, x) => s + x, 0);
    const topP = this.params.topP ?? 1;
    if (topP < 1) {
      let acc = 0;
      let keep = 0;
      while (keep < w.length) {
        acc += w[keep] / z;
        keep++;
        if (acc >= topP) break;
      }
      cand = cand.slice(0, keep);
      w.length = keep;
      z = w.reduce((s, x) => s + x, 0);
    }
    let r = this.rand() * z;
    for (let j = 0; j < cand.length; j++) {
      r -= w[j];
      if (r < 0) return cand[j];
    }
    return cand[cand.length - 1];
  }
}
