// LM head sampling on the GPU: one 256-thread workgroup applies the rule of sampling.ref.ts to f32 logits [V] (the
// output of the LM-head GEMV) and writes the id to a 4-byte buffer, so a decode step reads back 4 bytes.
// Passes over V: argmax (greedy ends here); 32 counting passes for the top-k key threshold; 32 mass passes for the
// top-p threshold (only when p < 1); the chunked prefix scan that draws the id.
import { KernelInputError } from "./errors.ts";
import type { GpuContext } from "./gpu-context.ts";
import { uniformLayout, type KernelProgram } from "./program.ts";
import { readUint32, submitCalls, uploadBuffer, type KernelCall } from "./dispatch.ts";
import type { SamplingParams } from "./sampling.ref.ts";

export const SAMPLING_WORKGROUP = 256;

export const samplingUniforms = uniformLayout([
  ["V", "u32"],
  ["hasMask", "u32"],
  ["greedy", "u32"],
  ["topK", "u32"],
  ["invTemp", "f32"],
  ["topP", "f32"],
  ["seed", "u32"],
  ["step", "u32"],
] as const);

/** Bindings: 1 logits f32 [V], 2 banned bitmask u32 [⌈V/32⌉] (any 16-byte buffer when hasMask = 0), 3 out u32 [1]. */
export function createSamplingProgram(): KernelProgram {
  const WG = SAMPLING_WORKGROUP;
  return {
    name: "lm-sample",
    cacheHint: `wg${WG}`,
    workgroupSize: WG,
    getShaderSource: () => `
${samplingUniforms.wgsl}
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> banned: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;
const WG: u32 = ${WG}u;
const NONE: u32 = 0xffffffffu;
var<workgroup> rf: array<f32, ${WG}>;
var<workgroup> ru: array<u32, ${WG}>;
var<workgroup> sf: f32;
var<workgroup> su: u32;

fn keyOf(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}
fn allowed(i: u32) -> bool {
  let v = logits[i];
  if (v != v) { return false; }
  if (P.hasMask == 0u) { return true; }
  return ((banned[i >> 5u] >> (i & 31u)) & 1u) == 0u;
}
fn sumF(t: u32, v: f32) -> f32 {
  rf[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) { rf[t] += rf[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u) { sf = rf[0]; }
  return workgroupUniformLoad(&sf);
}
fn sumU(t: u32, v: u32) -> u32 {
  ru[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) { ru[t] += ru[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u) { su = ru[0]; }
  return workgroupUniformLoad(&su);
}
fn maxU(t: u32, v: u32) -> u32 {
  ru[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) { ru[t] = max(ru[t], ru[t + s]); }
    workgroupBarrier();
  }
  if (t == 0u) { su = ru[0]; }
  return workgroupUniformLoad(&su);
}

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) t: u32) {
  // 1. argmax over allowed ids, lowest index on ties.
  var bv = 0.0;
  var bi = NONE;
  for (var i = t; i < P.V; i += WG) {
    if (allowed(i)) {
      let v = logits[i];
      if (bi == NONE || v > bv) { bv = v; bi = i; }
    }
  }
  rf[t] = bv;
  ru[t] = bi;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) {
      let oi = ru[t + s];
      let ov = rf[t + s];
      let mi = ru[t];
      if (oi != NONE && (mi == NONE || ov > rf[t] || (ov == rf[t] && oi < mi))) { rf[t] = ov; ru[t] = oi; }
    }
    workgroupBarrier();
  }
  if (t == 0u) { su = ru[0]; sf = rf[0]; }
  let best = workgroupUniformLoad(&su);
  let m = workgroupUniformLoad(&sf);
  if (best == NONE || P.greedy != 0u) {
    if (t == 0u) { out[0] = best; }
    return;
  }
  // 2. top-k key threshold: the largest τ with #{key ≥ τ} ≥ k.
  var tk = 0u;
  if (P.topK > 0u) {
    for (var bit = 0u; bit < 32u; bit++) {
      let cand = tk | (0x80000000u >> bit);
      var n = 0u;
      for (var i = t; i < P.V; i += WG) {
        if (allowed(i) && keyOf(logits[i]) >= cand) { n += 1u; }
      }
      if (sumU(t, n) >= P.topK) { tk = cand; }
    }
  }
  // 3. top-p key threshold over w = exp((l − m)/T) of the kept ids.
  var thr = tk;
  if (P.topP < 1.0) {
    var z = 0.0;
    for (var i = t; i < P.V; i += WG) {
      if (allowed(i) && keyOf(logits[i]) >= tk) { z += exp((logits[i] - m) * P.invTemp); }
    }
    let goal = P.topP * sumF(t, z);
    var tp = 0u;
    for (var bit = 0u; bit < 32u; bit++) {
      let cand = tp | (0x80000000u >> bit);
      var mass = 0.0;
      for (var i = t; i < P.V; i += WG) {
        let k = keyOf(logits[i]);
        if (allowed(i) && k >= tk && k >= cand) { mass += exp((logits[i] - m) * P.invTemp); }
      }
      if (sumF(t, mass) >= goal) { tp = cand; }
    }
    thr = max(tp, tk);
  }
  // 4. draw: chunk sums, inclusive scan, the chunk holding the target scans its ids in order.
  let chunk = (P.V + WG - 1u) / WG;
  let c0 = min(P.V, t * chunk);
  let c1 = min(P.V, c0 + chunk);
  var part = 0.0;
  var last = 0u;
  var any = 0u;
  for (var i = c0; i < c1; i++) {
    if (allowed(i) && keyOf(logits[i]) >= thr) { part += exp((logits[i] - m) * P.invTemp); last = i; any = 1u; }
  }
  let lastKept = maxU(t, select(0u, last + 1u, any == 1u)) - 1u;
  rf[t] = part;
  workgroupBarrier();
  for (var s = 1u; s < WG; s = s << 1u) {
    var add = 0.0;
    if (t >= s) { add = rf[t - s]; }
    workgroupBarrier();
    rf[t] += add;
    workgroupBarrier();
  }
  let total = rf[WG - 1u];
  var before = 0.0;
  if (t > 0u) { before = rf[t - 1u]; }
  let u = f32(hash(P.seed, P.step) >> 8u) / 16777216.0;
  let goalMass = u * total;
  if (t == 0u) { su = NONE; }
  workgroupBarrier();
  // One thread owns the target; it re-walks its chunk in the order of its chunk sum (the chunk's last kept id if
  // rounding leaves the running sum at or below the target).
  if (before <= goalMass && goalMass < rf[t]) {
    let local = goalMass - before;
    var acc = 0.0;
    var pick = last;
    for (var i = c0; i < c1; i++) {
      if (allowed(i) && keyOf(logits[i]) >= thr) {
        acc += exp((logits[i] - m) * P.invTemp);
        if (acc > local) { pick = i; break; }
      }
    }
    su = pick;
  }
  workgroupBarrier();
  if (t == 0u) {
    out[0] = select(su, lastKept, su == NONE);
  }
}

fn fmix(x0: u32) -> u32 {
  var x = x0;
  x ^= x >> 16u;
  x *= 0x85ebca6bu;
  x ^= x >> 13u;
  x *= 0xc2b2ae35u;
  x ^= x >> 16u;
  return x;
}
fn hash(seed: u32, step: u32) -> u32 { return fmix(seed ^ fmix(step + 0x9e3779b9u)); }
`,
  };
}

export interface SamplingBuffers {
  readonly logits: GPUBuffer;
  /** Banned-id bitmask [⌈V/32⌉] u32, or null. */
  readonly banned: GPUBuffer | null;
  /** ≥ 4 bytes; receives the id (0xffffffff when no id is allowed). */
  readonly out: GPUBuffer;
}

export function samplingCall(ctx: GpuContext, b: SamplingBuffers, vocab: number, p: SamplingParams): KernelCall {
  if (!Number.isInteger(vocab) || vocab < 1) throw new KernelInputError(`vocabulary size must be a positive integer, got ${vocab}`);
  if (!Number.isFinite(p.temperature)) throw new KernelInputError(`temperature must be finite, got ${p.temperature}`);
  if (!Number.isInteger(p.topK) || p.topK < 0) throw new KernelInputError(`top-k must be an integer ≥ 0, got ${p.topK}`);
  if (!(p.topP > 0)) throw new KernelInputError(`top-p must be > 0, got ${p.topP}`);
  if (b.logits.size < vocab * 4) throw new KernelInputError(`logits hold fewer than ${vocab} f32`);
  if (b.banned && b.banned.size < Math.ceil(vocab / 32) * 4) throw new KernelInputError(`the banned mask holds fewer than ${Math.ceil(vocab / 32)} words`);
  const greedy = p.temperature <= 0 || p.topK === 1;
  return {
    program: createSamplingProgram(),
    uniforms: samplingUniforms.pack({
      V: vocab,
      hasMask: b.banned ? 1 : 0,
      greedy: greedy ? 1 : 0,
      topK: p.topK,
      invTemp: greedy ? 0 : 1 / p.temperature,
      topP: p.topP >= 1 ? 1 : p.topP,
      seed: p.seed >>> 0,
      step: p.step >>> 0,
    }),
    // Without a mask the logits buffer is bound in its place (never read: hasMask = 0).
    buffers: [b.logits, b.banned ?? b.logits, b.out],
    grid: [1, 1, 1],
  };
}

/** Bitmask of banned ids for `samplingCall`. */
export function bannedMask(vocab: number, banned: readonly number[]): Uint32Array {
  const mask = new Uint32Array(Math.ceil(vocab / 32));
  for (const id of banned) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new KernelInputError(`banned id ${id} is outside the vocabulary of ${vocab}`);
    mask[id >>> 5] |= 1 << (id & 31);
  }
  return mask;
}

/** Uploads logits, samples, reads back the 4-byte id. */
export async function runSampling(ctx: GpuContext, logits: Float32Array, p: SamplingParams, banned: readonly number[] = []): Promise<number> {
  const lb = uploadBuffer(ctx, "logits", logits);
  const mb = banned.length ? uploadBuffer(ctx, "banned", bannedMask(logits.length, banned)) : null;
  const ob = ctx.storageBuffer("sampled-id", 4);
  try {
    await submitCalls(ctx, [samplingCall(ctx, { logits: lb, banned: mb, out: ob }, logits.length, p)], "sample");
    return (await readUint32(ctx, ob, 0, 1))[0];
  } finally {
    lb.destroy();
    mb?.destroy();
    ob.destroy();
  }
}
