// Pass 1 of flash-decoding for absorbed MLA attention (docs/method.md §8.3–8.4): one workgroup per (split of pages,
// block of heads, query). Per page of 64 tokens it computes scores from the stored codes, keeps a running max and
// per-space mass, and accumulates per-space Σ p_j c_j in f32 registers. Pass 2 (mla-attention-combine.ts) merges the
// splits by log-sum-exp. Queries are the last `queryCount` tokens of the cache; query i sees tokens < L − n_q + i + 1
// (decode is n_q = 1; append is a causal block).
import { PAGE_TOKENS, queryStride, type CacheLayout } from "./geometry.ts";
import { shaderPreamble, uniformLayout, type KernelProgram, type ShaderFeatures } from "./program.ts";
import { CACHE_UNIFORMS, cacheReaderWgsl } from "./wgsl-cache.ts";

/** Threads per workgroup: one per page token in the score phase. */
export const SPLIT_WORKGROUP = PAGE_TOKENS;

/** Runtime sizes of one dispatch. */
export const splitUniforms = uniformLayout([
  ["totalLen", "u32"],
  ["queryCount", "u32"],
  ["pagesPerSplit", "u32"],
  ["splitCount", "u32"],
  ...CACHE_UNIFORMS,
  ["scale", "f32"],
] as const);

/** Heads handled by one workgroup: a divisor of n_h, ≤ 8, with HB·channelsPerThread ≤ 32 to bound registers. */
export function headBlock(layout: CacheLayout): number {
  const cpt = Math.ceil(layout.geometry.latentWidth / SPLIT_WORKGROUP);
  let best = 1;
  for (let hb = 1; hb <= 8; hb++) {
    if (layout.geometry.heads % hb === 0 && hb * cpt <= 32) best = hb;
  }
  return best;
}

/** Workgroup memory of pass 1 in bytes: q̃ tile + page probabilities + running max + rescale factors. */
export function splitWorkgroupBytes(layout: CacheLayout): number {
  const hb = headBlock(layout);
  const tile = layout.geometry.latentWidth % 64 === 0 ? 64 : 32;
  return 4 * (hb * layout.geometry.spaces * tile + hb * PAGE_TOKENS + 2 * hb);
}

/** f32 values per (query, split, head) in the partial buffers. */
export function partialSizes(layout: CacheLayout): { stats: number; acc: number } {
  return { stats: 4, acc: layout.geometry.spaces * layout.geometry.latentWidth };
}

export function createMlaAttentionSplitProgram(layout: CacheLayout): KernelProgram {
  const g = layout.geometry;
  const hb = headBlock(layout);
  const cpt = Math.ceil(g.latentWidth / SPLIT_WORKGROUP);
  // Channel tile for the q̃ slice in workgroup memory: HB·spaces·TILE·4 B ≤ 4 KiB.
  const tile = g.latentWidth % 64 === 0 ? 64 : 32;
  // Every thread owns CPT whole channels inside one quantization group and one or more whole code words. Channel-axis
  // caches have one scale per channel, so they take the per-element path.
  const aligned =
    layout.latentAxis === "token" && g.latentWidth % SPLIT_WORKGROUP === 0 && (cpt & (cpt - 1)) === 0 && layout.latentGroup % cpt === 0;
  const cacheHint = [
    `h${g.heads}`, `kv${g.kvHeads}`, `r${g.ropeDims}`, `dc${g.latentWidth}`, `s${g.spaces}`,
    `lb${layout.encoding.latentBits}`, `lg${layout.latentGroup}`, `ax${layout.latentAxis[0]}`, `rb${layout.ropeBits}`,
    `hb${hb}`, `t${tile}`, `a${aligned ? 1 : 0}`, `wg${SPLIT_WORKGROUP}`,
  ].join("-");
  return {
    name: "mla-attention-split",
    cacheHint,
    workgroupSize: SPLIT_WORKGROUP,
    getShaderSource: (features) => splitShader(layout, features, { hb, cpt, tile, aligned }),
  };
}

// Loops over heads (HB) and owned channels (CPT) are unrolled in the generated WGSL so the per-thread score and
// accumulator arrays become scalar registers: compilers that keep dynamically indexed arrays in memory
// (SwiftShader's, some mobile ones) otherwise spend most of the time in scattered loads and stores.
function splitShader(
  layout: CacheLayout,
  features: ShaderFeatures,
  o: { hb: number; cpt: number; tile: number; aligned: boolean },
): string {
  const g = layout.geometry;
  const { hb, cpt, tile, aligned } = o;
  const two = g.spaces === 2;
  const H = [...Array(hb).keys()];
  const K = [...Array(cpt).keys()];
  const spaces = two ? [0, 1] : [0];
  const lines = (f: (h: number) => string): string => H.map(f).join("\n");
  const accVars = aligned
    ? spaces.flatMap((m) => H.flatMap((h) => K.map((k) => `  var a${m}_${h}_${k} = 0.0;`))).join("\n")
    : `  var acc0: array<f32, ${hb * cpt}>;\n  var acc1: array<f32, ${two ? hb * cpt : 1}>;\n` +
      `  for (var i = 0u; i < ${hb * cpt}u; i++) { acc0[i] = 0.0; }\n  for (var i = 0u; i < ${two ? hb * cpt : 1}u; i++) { acc1[i] = 0.0; }`;
  const rescale = aligned
    ? H.map((h) => `    { let al = alpha[${h}]; ${spaces.flatMap((m) => K.map((k) => `a${m}_${h}_${k} *= al;`)).join(" ")} }`).join("\n")
    : `    for (var h = 0u; h < HB; h++) {
      let al = alpha[h];
      for (var k = 0u; k < CPT; k++) { acc0[h * CPT + k] *= al; ${two ? "acc1[h * CPT + k] *= al;" : ""} }
    }`;
  // Values per word and words per thread for the aligned path (CPT and 32/b are powers of two, e0 is CPT-aligned).
  const lb = layout.encoding.latentBits;
  const vpw = 32 / lb;
  const wordsPerThread = Math.max(1, (cpt * lb) / 32);
  // mode "mixed": both accumulators with 0/1 weights per token; "text"/"image": the page holds one modality only, so
  // one accumulator and half the multiply-adds (VLM chats are long homogeneous spans).
  const alignedLoop = (mode: "mixed" | 0 | 1): string => {
    const weights =
      mode === "mixed"
        ? `      let w1 = f32(modalityOf(tok));\n      let w0 = 1.0 - w1;\n` +
          lines((h) => `      let p${h} = probs[${h}u * PAGE + jj];\n      let q0_${h} = p${h} * w0;\n      let q1_${h} = p${h} * w1;`)
        : lines((h) => `      let q${mode}_${h} = probs[${h}u * PAGE + jj];`);
    const targets = mode === "mixed" ? spaces : [mode];
    return `
    for (var jj = 0u; jj < nValid; jj++) {
      let tok = base + jj;
${weights}
${K.map((k) => `      var x${k}: f32;`).join("\n")}
      if (tok < P.sealedLen) {
        let e0 = tok * DC + t * CPT;
        let sz = latentScaleZero(tok, t * CPT);
${[...Array(wordsPerThread).keys()].map((w) => `        let wd${w} = cache[P.latCodesOff + e0 / LVPW + ${w}u];`).join("\n")}
        let sh = (e0 % LVPW) * LBITS;
${K.map((k) => {
  const w = Math.floor(k / vpw);
  const shift = cpt <= vpw ? `sh + ${k * lb}u` : `${(k % vpw) * lb}u`;
  return `        x${k} = f32((wd${w} >> (${shift})) & LMASK) * sz.x + sz.y;`;
}).join("\n")}
      } else {
        let rowBase = (tok - P.sealedLen) * TS + t * CPT;
${K.map((k) => `        x${k} = tail[rowBase + ${k}u];`).join("\n")}
      }
${targets.map((m) => H.map((h) => `      ${K.map((k) => `a${m}_${h}_${k} += q${m}_${h} * x${k};`).join(" ")}`).join("\n")).join("\n")}
    }`;
  };
  const alignedAccumulate = two
    ? `
    // Which modalities the page's valid tokens hold (base is 64-aligned: two whole modality words).
    let mlo = modality[base >> 5u];
    let mhi = modality[(base >> 5u) + 1u];
    let vlo = select((1u << min(nValid, 31u)) - 1u, 0xffffffffu, nValid >= 32u);
    let vhi = select(0u, select((1u << (nValid - 32u)) - 1u, 0xffffffffu, nValid >= 64u), nValid > 32u);
    let anyImage = ((mlo & vlo) | (mhi & vhi)) != 0u;
    let anyText = ((~mlo & vlo) | (~mhi & vhi)) != 0u;
    if (!anyImage) {${alignedLoop(0)}
    } else if (!anyText) {${alignedLoop(1)}
    } else {${alignedLoop("mixed")}
    }`
    : alignedLoop(0);
  const genericAccumulate = `
    for (var jj = 0u; jj < nValid; jj++) {
      let tok = base + jj;
      let m = modalityOf(tok);
      var pj: array<f32, HB>;
      for (var h = 0u; h < HB; h++) { pj[h] = probs[h * PAGE + jj]; }
      for (var k = 0u; k < CPT; k++) {
        let c = t * CPT + k;
        if (c < DC) {
          let x = latentAt(tok, c);
          for (var h = 0u; h < HB; h++) {
            ${two ? "if (m == 0u) { acc0[h * CPT + k] += pj[h] * x; } else { acc1[h * CPT + k] += pj[h] * x; }" : "acc0[h * CPT + k] += pj[h] * x;"}
          }
        }
      }
    }`;
  const writeAcc = aligned
    ? spaces
        .map((m) => H.map((h) => `  ${K.map((k) => `partAcc[((row + ${h}u) * SPACES + ${m}u) * DC + t * CPT + ${k}u] = a${m}_${h}_${k};`).join(" ")}`).join("\n"))
        .join("\n")
    : `  for (var h = 0u; h < HB; h++) {
    for (var k = 0u; k < CPT; k++) {
      let c = t * CPT + k;
      if (c < DC) {
        partAcc[((row + h) * SPACES) * DC + c] = acc0[h * CPT + k];
        ${two ? "partAcc[((row + h) * SPACES + 1u) * DC + c] = acc1[h * CPT + k];" : ""}
      }
    }
  }`;
  return `${shaderPreamble(features)}
${splitUniforms.wgsl}
${cacheReaderWgsl(layout, { cache: 2, tail: 3, modality: 4 }, features)}
@group(0) @binding(1) var<storage, read> query: array<f32>;
@group(0) @binding(5) var<storage, read_write> partStats: array<f32>;
@group(0) @binding(6) var<storage, read_write> partAcc: array<f32>;

const NH: u32 = ${g.heads}u;
const HPG: u32 = ${g.heads / g.kvHeads}u;
const HB: u32 = ${hb}u;
const CPT: u32 = ${cpt}u;
const TILE: u32 = ${tile}u;
const ST: u32 = ${g.spaces * tile}u;
const PAGE: u32 = ${PAGE_TOKENS}u;
const WG: u32 = ${SPLIT_WORKGROUP}u;
const QS: u32 = ${queryStride(g)}u;
const QLAT: u32 = ${g.heads * g.ropeDims}u;
const QBETA: u32 = ${g.heads * g.ropeDims + g.spaces * g.heads * g.latentWidth}u;
// Finite stand-in for −∞: exp(NEG − finite) = 0 without the NaN of (−∞) − (−∞).
const NEG: f32 = -3.0e38;

var<workgroup> qTile: array<f32, ${hb * g.spaces * tile}>;
var<workgroup> probs: array<f32, ${hb * PAGE_TOKENS}>;
var<workgroup> runMax: array<f32, HB>;
var<workgroup> alpha: array<f32, HB>;

@compute @workgroup_size(${SPLIT_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let split = wid.x;
  let h0 = wid.y * HB;
  let qi = wid.z;
  let limit = P.totalLen - P.queryCount + qi + 1u;
  let qBase = qi * QS;
  let pageBegin = split * P.pagesPerSplit;
  let pageEnd = min(pageBegin + P.pagesPerSplit, (limit + PAGE - 1u) / PAGE);

${accVars}
  var l0 = 0.0;
  var l1 = 0.0;
  if (t < HB) { runMax[t] = NEG; }

  for (var p = pageBegin; p < pageEnd; p++) {
    let base = p * PAGE;
    let j = base + t;
    let valid = j < limit;
    var mj = 0u;
    var sr: array<f32, HB>;
    for (var h = 0u; h < HB; h++) { sr[h] = 0.0; }
    if (valid) {
      mj = modalityOf(j);
      // Dequantize k_rope[kv, j] once per KV head of the block, not once per query head.
      var kr: array<f32, ${Math.max(1, g.ropeDims)}>;
      var kvLoaded = 0xffffffffu;
      for (var h = 0u; h < HB; h++) {
        let head = h0 + h;
        let kv = head / HPG;
        if (kv != kvLoaded) {
          for (var k = 0u; k < R; k++) { kr[k] = ropeAt(j, kv, k); }
          kvLoaded = kv;
        }
        var d = query[qBase + QBETA + mj * NH + head];
        for (var k = 0u; k < R; k++) { d += query[qBase + head * R + k] * kr[k]; }
        sr[h] = d;
      }
    }
${lines((h) => `    var s${h} = sr[${h}];`)}
    // Latent scores q̃^{m(j)}·c_j, one channel tile of q̃ in workgroup memory at a time.
    for (var c0 = 0u; c0 < DC; c0 += TILE) {
      workgroupBarrier();
      for (var e = t; e < HB * ST; e += WG) {
        let h = e / ST;
        let m = (e / TILE) % SPACES;
        let c = e % TILE;
        qTile[e] = query[qBase + QLAT + (m * NH + h0 + h) * DC + c0 + c];
      }
      workgroupBarrier();
      if (valid) {
        let qRow = mj * TILE;
        if (j < P.sealedLen) {
          let wBase = P.latCodesOff + (j * DC + c0) / LVPW;
          for (var w = 0u; w < TILE / LVPW; w++) {
            let word = cache[wBase + w];
${layout.latentAxis === "token" ? "            let sz = latentScaleZero(j, c0 + w * LVPW);\n" : ""}            for (var k = 0u; k < LVPW; k++) {
${layout.latentAxis === "token" ? "" : "              let sz = latentScaleZero(j, c0 + w * LVPW + k);\n"}              let x = f32((word >> (k * LBITS)) & LMASK) * sz.x + sz.y;
              let ci = qRow + w * LVPW + k;
${lines((h) => `              s${h} += qTile[${h}u * ST + ci] * x;`)}
            }
          }
        } else {
          let rowBase = (j - P.sealedLen) * TS + c0;
          for (var c = 0u; c < TILE; c++) {
            let x = tail[rowBase + c];
            let ci = qRow + c;
${lines((h) => `            s${h} += qTile[${h}u * ST + ci] * x;`)}
          }
        }
      }
    }
${lines((h) => `    probs[${h}u * PAGE + t] = select(NEG, s${h} * P.scale, valid);`)}
    workgroupBarrier();
    if (t < HB) {
      var pm = NEG;
      for (var k = 0u; k < PAGE; k++) { pm = max(pm, probs[t * PAGE + k]); }
      let nm = max(runMax[t], pm);
      alpha[t] = exp(runMax[t] - nm);
      runMax[t] = nm;
    }
    workgroupBarrier();
    for (var h = 0u; h < HB; h++) {
      probs[h * PAGE + t] = select(0.0, exp(probs[h * PAGE + t] - runMax[h]), valid);
    }
    workgroupBarrier();
    let nValid = min(PAGE, limit - base);
    if (t < HB) {
      var a0 = 0.0;
      var a1 = 0.0;
      for (var k = 0u; k < nValid; k++) {
        let pk = probs[t * PAGE + k];
        if (modalityOf(base + k) == 0u) { a0 += pk; } else { a1 += pk; }
      }
      l0 = l0 * alpha[t] + a0;
      l1 = l1 * alpha[t] + a1;
    }
    // Accumulate Σ p_j c_j: thread t owns channels [t·CPT, t·CPT + CPT) for every head of the block.
${rescale}
${aligned ? alignedAccumulate : genericAccumulate}
  }

  let row = (qi * P.splitCount + split) * NH + h0;
  if (t < HB) {
    partStats[(row + t) * 4u] = runMax[t];
    partStats[(row + t) * 4u + 1u] = l0;
    partStats[(row + t) * 4u + 2u] = l1;
    partStats[(row + t) * 4u + 3u] = 0.0;
  }
${writeAcc}
}
`;
}
