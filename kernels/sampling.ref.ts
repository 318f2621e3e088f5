// The sampling rule of the GPU LM head, as a CPU reference another runtime can mirror exactly (docs/kernels.md,
// "Sampling"). Inputs: f32 logits [V], an optional banned-id bitmask, temperature T, top-k, top-p, seed, step.
//
//  1. Allowed ids: not banned, logit not NaN. None → no id (0xffffffff).
//  2. Greedy when T ≤ 0 or top-k = 1: the allowed id with the largest logit, the lowest index on ties (the CPU
//     runtime's argmaxExcluding).
//  3. key(i) = the order-preserving u32 of the f32 logit (negative: ~bits; else bits | 0x80000000). Top-k (k > 0):
//     τ_k = the largest u32 τ with #{allowed i : key(i) ≥ τ} ≥ k, found bit by bit from the top (τ_k = 0 when fewer
//     than k are allowed); kept = {allowed i : key(i) ≥ τ_k} — ids tied with the k-th largest logit are all kept.
//  4. w_i = exp((l_i − m)/T) over kept ids, m = the largest allowed logit (range-safe for any logit); Z = Σ w.
//  5. Top-p (0 < p < 1): τ_p = the largest u32 τ with Σ{w_i : kept, key(i) ≥ τ} ≥ p·Z, bit by bit;
//     kept' = {kept : key(i) ≥ τ_p}. Otherwise kept' = kept.
//  6. u = (h >> 8) / 2^24 with h = samplerHash(seed, step) (24-bit uniform in [0, 1)); target = u · Σ_{kept'} w.
//     The sampled id is the first kept' id in ascending index order whose running sum of w exceeds target (the last
//     kept' id if rounding leaves none).
// Integer steps (keys, thresholds of 3, the hash) are exact on every runtime; the float steps (masses of 5, the running
// sum of 6) differ between f32 on the GPU and f64 here by rounding, so ids agree except when the target or p·Z falls
// within rounding distance of a boundary: `margin` reports that distance (relative to the total mass) — for top-p only
// when the draw would change with the neighbouring kept key as τ_p (many tiny weights put p·Z close to some boundary
// without changing the draw).

export interface SamplingParams {
  /** ≤ 0: greedy. */
  readonly temperature: number;
  /** 0: off. */
  readonly topK: number;
  /** ≥ 1: off. */
  readonly topP: number;
  readonly seed: number;
  /** Token index of the draw (the counter of the counter-based generator). */
  readonly step: number;
}

export const NO_TOKEN = 0xffffffff;

/** murmur3's fmix32 of seed ⊕ fmix32(step + golden): the counter-based hash of draw `step` under `seed`. */
export function samplerHash(seed: number, step: number): number {
  const fmix = (x: number): number => {
    x = (x ^ (x >>> 16)) >>> 0;
    x = Math.imul(x, 0x85ebca6b) >>> 0;
    x = (x ^ (x >>> 13)) >>> 0;
    x = Math.imul(x, 0xc2b2ae35) >>> 0;
    return (x ^ (x >>> 16)) >>> 0;
  };
  return fmix((seed ^ fmix((step + 0x9e3779b9) >>> 0)) >>> 0);
}

export function samplerUniform(seed: number, step: number): number {
  return (samplerHash(seed, step) >>> 8) / 16777216;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Order-preserving u32 key of an f32 value. */
export function logitKey(v: number): number {
  f32[0] = v;
  const b = u32[0];
  return (b & 0x80000000 ? ~b : b | 0x80000000) >>> 0;
}

function isBanned(banned: Uint32Array | null, i: number): boolean {
  return banned !== null && ((banned[i >>> 5] >>> (i & 31)) & 1) === 1;
}

/** Largest u32 τ (bit by bit from the top) with pred(τ) true; pred must be monotone (true for small τ). */
function largestThreshold(pred: (t: number) => boolean): number {
  let t = 0;
  for (let bit = 31; bit >= 0; bit--) {
    const cand = (t | (1 << bit)) >>> 0;
    if (pred(cand)) t = cand;
  }
  return t;
}

export interface SampleResult {
  readonly id: number;
  /** Distance of the float decisions from their boundaries, relative to the mass (Infinity for greedy). */
  readonly margin: number;
}

export function sampleRef(logits: Float32Array, banned: Uint32Array | null, p: SamplingParams): SampleResult {
  const v = logits.length;
  const ok = (i: number): boolean => !isBanned(banned, i) && !Number.isNaN(logits[i]);
  let best = NO_TOKEN;
  let bestV = -Infinity;
  for (let i = 0; i < v; i++) {
    if (ok(i) && (best === NO_TOKEN || logits[i] > bestV)) {
      best = i;
      bestV = logits[i];
    }
  }
  if (best === NO_TOKEN || p.temperature <= 0 || p.topK === 1) return { id: best, margin: Infinity };
  const keys = Uint32Array.from(logits, (x) => logitKey(x));
  const tk = p.topK > 0 ? largestThreshold((t) => {
    let n = 0;
    for (let i = 0; i < v; i++) if (ok(i) && keys[i] >= t) n++;
    return n >= p.topK;
  }) : 0;
  const w = new Float64Array(v);
  let z = 0;
  for (let i = 0; i < v; i++) {
    if (ok(i) && keys[i] >= tk) {
      w[i] = Math.exp((logits[i] - bestV) / p.temperature);
      z += w[i];
    }
  }
  const massAbove = (t: number, strict: boolean): number => {
    let s = 0;
    for (let i = 0; i < v; i++) if (ok(i) && keys[i] >= tk && (strict ? keys[i] > t : keys[i] >= t)) s += w[i];
    return s;
  };
  const draw = (thr: number): SampleResult => {
    let total = 0;
    let last = NO_TOKEN;
    for (let i = 0; i < v; i++) {
      if (ok(i) && keys[i] >= thr) {
        total += w[i];
        last = i;
      }
    }
    const target = samplerUniform(p.seed, p.step) * total;
    let acc = 0;
    for (let i = 0; i < v; i++) {
      if (!(ok(i) && keys[i] >= thr)) continue;
      const before = acc;
      acc += w[i];
      if (acc > target) return { id: i, margin: Math.min((target - before) / total, (acc - target) / total) };
    }
    return { id: last, margin: 0 };
  };
  if (!(p.topP < 1)) return draw(tk);
  const goal = p.topP * z;
  const tp = largestThreshold((t) => massAbove(t, false) >= goal);
  const result = draw(Math.max(tp, tk));
  const pMargin = Math.min((massAbove(tp, false) - goal) / z, (goal - massAbove(tp, true)) / z);
  // When p·Z is within rounding of a mass boundary, another runtime may settle on the neighbouring kept key; the draw
  // is still robust if it gives the same id with either neighbour as the threshold.
  let above = Infinity;
  let below = -1;
  for (let i = 0; i < v; i++) {
    if (!ok(i) || keys[i] < tk) continue;
    if (keys[i] > tp && keys[i] < above) above = keys[i];
    if (keys[i] < tp && keys[i] > below) below = keys[i];
  }
  const robust = [above, below].every((t) => !Number.isFinite(t) || t < 0 || draw(Math.max(t, tk)).id === result.id);
  return { id: result.id, margin: robust ? result.margin : Math.min(result.margin, pMargin) };
}
