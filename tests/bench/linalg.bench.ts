// Linear-algebra cost of converting one Qwen2.5-VL-7B-sized layer on synthetic weights and activations: joint SVD of
// the 896×3584 [W_k,nope ; W_v] at rank 256, second-moment accumulation of a few thousand 3584-d activations (routed
// to image/text), the full 3584×3584 symmetric eigen-decomposition, and MD-SVD for both modalities; target ≤ 60 s
// total. `npm run bench:linalg -- --json` prints one JSON object on stdout; without --json, a summary.
import { parseArgs } from "node:util";
import { cpus } from "node:os";
import { defaultKernels } from "../../convert/linalg/default-kernels.ts";
import { typescriptKernels } from "../../convert/linalg/kernels-ts.ts";
import { eigh } from "../../convert/linalg/eigh.ts";
import { matrix, stackRows, type Matrix } from "../../convert/linalg/matrix.ts";
import { SecondMomentAccumulator } from "../../convert/linalg/second-moment.ts";
import { mdSvdKv } from "../../convert/lowrank/md-svd.ts";
import { kvReconstructionError } from "../../convert/lowrank/reconstruction-error.ts";
import { svdJoint } from "../../convert/lowrank/svd-joint.ts";
import type { KvDims } from "../../convert/lowrank/types.ts";

const { values: args } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    tokens: { type: "string", default: "4096" },
    "image-fraction": { type: "string", default: "0.25" },
    kernels: { type: "string", default: "best" },
    quality: { type: "boolean", default: true },
  },
});

const DIMS: KvDims = { nKv: 4, dNope: 96, dHead: 128, hidden: 3584 }; // r_dim = 32 of d_h = 128
const RANK = 256; // D_c = n_kv·d_kv, d_kv = 64
const TARGET_S = 60;
const tokens = Number(args.tokens);
const imageTokens = Math.round(tokens * Number(args["image-fraction"]));
if (!Number.isInteger(tokens) || tokens <= 0 || imageTokens < 1 || imageTokens >= tokens) throw new Error("bad --tokens/--image-fraction");
const kernels = args.kernels === "ts" ? typescriptKernels : defaultKernels();

function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return (s + 0.5) / 2 ** 32;
  };
}

function gaussian(seed: number): () => number {
  const u = xorshift(seed);
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

function randomWeights(rows: number, cols: number, seed: number, scale: number): Matrix {
  const g = gaussian(seed);
  const m = matrix(rows, cols);
  for (let i = 0; i < m.data.length; i++) m.data[i] = g() * scale;
  return m;
}

/**
 * Anisotropic activations without a d×d basis per token: per-dim scales decaying over a random order, a shared
 * rank-32 component, and a few outlier dims — image and text get different scales, factors and outliers.
 */
function activations(n: number, d: number, seed: number): Float32Array {
  const g = gaussian(seed);
  const u = xorshift(seed + 1);
  const scale = Float64Array.from({ length: d }, () => 0.05 + u() ** 4);
  const factors = 32;
  const load = Float64Array.from({ length: d * factors }, () => g() * 0.3);
  const outliers = [Math.floor(u() * d), Math.floor(u() * d), Math.floor(u() * d)];
  const out = new Float32Array(n * d);
  const h = new Float64Array(factors);
  for (let t = 0; t < n; t++) {
    for (let f = 0; f < factors; f++) h[f] = g();
    for (let i = 0; i < d; i++) {
      let s = g() * scale[i];
      for (let f = 0; f < factors; f++) s += load[i * factors + f] * h[f];
      out[t * d + i] = s;
    }
    for (const o of outliers) out[t * d + o] += 20 * g();
  }
  return out;
}

function timed<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const r = fn();
  return [r, (performance.now() - t0) / 1000];
}

const d = DIMS.hidden;
const wkNope = randomWeights(DIMS.nKv * DIMS.dNope, d, 1, 0.02);
const wv = randomWeights(DIMS.nKv * DIMS.dHead, d, 2, 0.02);
const xImg = activations(imageTokens, d, 10);
const xTxt = activations(tokens - imageTokens, d, 20);
// Interleave into one token stream with a modality mask, as calibration capture delivers it.
const stream = new Float32Array(tokens * d);
const isImage = new Uint8Array(tokens);
{
  let i = 0, t = 0;
  for (let p = 0; p < tokens; p++) {
    const img = i < imageTokens && (t >= tokens - imageTokens || p % 4 === 0);
    const src = img ? xImg.subarray(i * d, (i + 1) * d) : xTxt.subarray(t * d, (t + 1) * d);
    stream.set(src, p * d);
    isImage[p] = img ? 1 : 0;
    if (img) i++;
    else t++;
  }
}

const seconds: Record<string, number> = {};
const [joint, tJoint] = timed(() => svdJoint(wkNope, wv, DIMS, RANK, kernels));
seconds.jointSvd = tJoint;

const [moments, tMoments] = timed(() => {
  const img = new SecondMomentAccumulator(d, { kernels });
  const txt = new SecondMomentAccumulator(d, { kernels });
  for (let p = 0; p < tokens; p += 256) {
    const end = Math.min(p + 256, tokens);
    img.add(stream.subarray(p * d, end * d), isImage.subarray(p, end), 1);
    txt.add(stream.subarray(p * d, end * d), isImage.subarray(p, end), 0);
  }
  return { img: img.secondMoment(), txt: txt.secondMoment(), nImg: img.count, nTxt: txt.count };
});
seconds.secondMoments = tMoments;

// The full-rank second moment of all tokens (N > d), so the eigensolver sees no artificial rank deficiency.
const all = matrix(d, d);
for (let i = 0; i < all.data.length; i++) all.data[i] = (moments.nImg * moments.img.data[i] + moments.nTxt * moments.txt.data[i]) / tokens;
const [eig, tEig] = timed(() => eigh(all, kernels));
seconds.eigh3584 = tEig;

const [mdImg, tMdImg] = timed(() => mdSvdKv(wkNope, wv, DIMS, moments.img, RANK, { kernels }));
seconds.mdSvdImage = tMdImg;
const [mdTxt, tMdTxt] = timed(() => mdSvdKv(wkNope, wv, DIMS, moments.txt, RANK, { kernels }));
seconds.mdSvdText = tMdTxt;
const total = Object.values(seconds).reduce((a, b) => a + b, 0);

// Outside the timed total: the activation-weighted errors (what MD-SVD buys) and a residual check of the big eigh.
const quality: Record<string, number> = {};
if (args.quality) {
  quality.errorJointImage = kvReconstructionError(wkNope, wv, joint, moments.img, kernels);
  quality.errorMdSvdImage = kvReconstructionError(wkNope, wv, mdImg, moments.img, kernels);
  quality.errorJointText = kvReconstructionError(wkNope, wv, joint, moments.txt, kernels);
  quality.errorMdSvdText = kvReconstructionError(wkNope, wv, mdTxt, moments.txt, kernels);
  // ‖A·v − λ·v‖ / ‖A‖ for three eigenpairs (top, middle, bottom).
  let worst = 0;
  for (const j of [0, d >> 1, d - 1]) {
    let r2 = 0;
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += all.data[i * d + k] * eig.vectors.data[k * d + j];
      r2 += (s - eig.values[j] * eig.vectors.data[i * d + j]) ** 2;
    }
    worst = Math.max(worst, Math.sqrt(r2) / eig.values[0]);
  }
  quality.eighRelativeResidual = worst;
}

const result = {
  bench: "linalg",
  kernels: kernels.name,
  cpu: cpus()[0]?.model ?? "unknown",
  cores: cpus().length,
  layer: { ...DIMS, jointRows: DIMS.nKv * (DIMS.dNope + DIMS.dHead), rank: RANK, tokens, imageTokens: moments.nImg, textTokens: moments.nTxt },
  seconds: Object.fromEntries(Object.entries(seconds).map(([k, v]) => [k, Number(v.toFixed(3))])),
  totalSeconds: Number(total.toFixed(3)),
  targetSeconds: TARGET_S,
  withinTarget: total <= TARGET_S,
  quality,
};

if (args.json) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  console.log(`linalg bench (${result.kernels}, ${result.cores} × ${result.cpu})`);
  for (const [k, v] of Object.entries(result.seconds)) console.log(`  ${k.padEnd(14)} ${v.toFixed(2)} s`);
  console.log(`  total          ${total.toFixed(2)} s (target ≤ ${TARGET_S} s: ${result.withinTarget ? "met" : "MISSED"})`);
  console.log("  quality", quality);
}
