// Same-harness baseline for the kernels benchmark: a straightforward WGSL flash-decoding GQA kernel over the
// uncompressed f32 K/V cache ([n_kv][T][d_h], BNSH like onnxruntime's past_key). Built the same way as the MLA kernel
// (64-token pages, one thread per token for scores, unrolled per-head registers, log-sum-exp combine via the MLA
// combine program with D_c := d_h and one space), so the ratio isolates the cache format, not framework overhead.
import type { GpuContext } from "../../kernels/gpu-context.ts";
import { BufferUsage } from "../../kernels/gpu-flags.ts";
import { cacheLayout } from "../../kernels/geometry.ts";
import { combineUniforms, createMlaAttentionCombineProgram } from "../../kernels/mla-attention-combine.ts";
import { planSplits } from "../../kernels/mla-attention.ts";
import { uniformLayout, type KernelProgram } from "../../kernels/program.ts";

const gqaUniforms = uniformLayout([
  ["totalLen", "u32"],
  ["pagesPerSplit", "u32"],
  ["splitCount", "u32"],
  ["capacity", "u32"],
  ["scale", "f32"],
] as const);

export interface GqaShape {
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
}

function gqaSplitProgram(s: GqaShape): KernelProgram {
  const hpg = s.heads / s.kvHeads;
  const dpt = s.headDim / 64;
  const H = [...Array(hpg).keys()];
  const D = [...Array(dpt).keys()];
  return {
    name: "gqa-baseline-split",
    cacheHint: `h${s.heads}-kv${s.kvHeads}-d${s.headDim}`,
    workgroupSize: 64,
    getShaderSource: () => `
${gqaUniforms.wgsl}
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kCache: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> vCache: array<f32>;
@group(0) @binding(4) var<storage, read_write> partStats: array<f32>;
@group(0) @binding(5) var<storage, read_write> partAcc: array<f32>;
const NH: u32 = ${s.heads}u;
const HPG: u32 = ${hpg}u;
const DH: u32 = ${s.headDim}u;
const PAGE: u32 = 64u;
const NEG: f32 = -3.0e38;
var<workgroup> qs: array<vec4<f32>, ${(hpg * s.headDim) / 4}>;
var<workgroup> probs: array<f32, ${hpg * 64}>;
var<workgroup> runMax: array<f32, HPG>;
var<workgroup> alpha: array<f32, HPG>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let split = wid.x;
  let kv = wid.y;
  let h0 = kv * HPG;
  for (var e = t; e < HPG * DH / 4u; e += 64u) {
    let i = h0 * DH / 4u + e;
    qs[e] = vec4<f32>(q[4u * i], q[4u * i + 1u], q[4u * i + 2u], q[4u * i + 3u]);
  }
  if (t < HPG) { runMax[t] = NEG; }
${H.flatMap((h) => D.map((d) => `  var a${h}_${d} = 0.0;`)).join("\n")}
  var l = 0.0;
  let pageBegin = split * P.pagesPerSplit;
  let pageEnd = min(pageBegin + P.pagesPerSplit, (P.totalLen + PAGE - 1u) / PAGE);
  let kvBase = kv * P.capacity;
  for (var p = pageBegin; p < pageEnd; p++) {
    workgroupBarrier();
    let base = p * PAGE;
    let j = base + t;
    let valid = j < P.totalLen;
${H.map((h) => `    var s${h} = 0.0;`).join("\n")}
    if (valid) {
      let row = (kvBase + j) * DH / 4u;
      for (var c = 0u; c < DH / 4u; c++) {
        let k4 = kCache[row + c];
${H.map((h) => `        s${h} += dot(qs[${h}u * DH / 4u + c], k4);`).join("\n")}
      }
    }
${H.map((h) => `    probs[${h}u * PAGE + t] = select(NEG, s${h} * P.scale, valid);`).join("\n")}
    workgroupBarrier();
    if (t < HPG) {
      var pm = NEG;
      for (var k = 0u; k < PAGE; k++) { pm = max(pm, probs[t * PAGE + k]); }
      let nm = max(runMax[t], pm);
      alpha[t] = exp(runMax[t] - nm);
      runMax[t] = nm;
    }
    workgroupBarrier();
    for (var h = 0u; h < HPG; h++) { probs[h * PAGE + t] = select(0.0, exp(probs[h * PAGE + t] - runMax[h]), valid); }
    workgroupBarrier();
    let nValid = min(PAGE, P.totalLen - base);
    if (t < HPG) {
      var a = 0.0;
      for (var k = 0u; k < nValid; k++) { a += probs[t * PAGE + k]; }
      l = l * alpha[t] + a;
    }
${H.map((h) => `    { let al = alpha[${h}]; ${D.map((d) => `a${h}_${d} *= al;`).join(" ")} }`).join("\n")}
    for (var jj = 0u; jj < nValid; jj++) {
      let vrow = (kvBase + base + jj) * DH + t * ${dpt}u;
${D.map((d) => `      let x${d} = vCache[vrow + ${d}u];`).join("\n")}
${H.map((h) => `      { let ph = probs[${h}u * PAGE + jj]; ${D.map((d) => `a${h}_${d} += ph * x${d};`).join(" ")} }`).join("\n")}
    }
  }
  let row = split * NH + h0;
  if (t < HPG) {
    partStats[(row + t) * 4u] = runMax[t];
    partStats[(row + t) * 4u + 1u] = l;
    partStats[(row + t) * 4u + 2u] = 0.0;
    partStats[(row + t) * 4u + 3u] = 0.0;
  }
${H.map((h) => `  ${D.map((d) => `partAcc[(row + ${h}u) * DH + t * ${dpt}u + ${d}u] = a${h}_${d};`).join(" ")}`).join("\n")}
}
`,
  };
}

/** Decode-step GQA over a resident f32 K/V cache; `step()` encodes and submits one token's attention. */
export class GqaBaseline {
  readonly k: GPUBuffer;
  readonly v: GPUBuffer;
  readonly #q: GPUBuffer;
  readonly #stats: GPUBuffer;
  readonly #acc: GPUBuffer;
  readonly #out: GPUBuffer;
  readonly #params: GPUBuffer;
  readonly #combineParams: GPUBuffer;
  readonly #split: KernelProgram;
  readonly #combine: KernelProgram;
  readonly splitCount: number;
  readonly pagesPerSplit: number;

  constructor(
    readonly ctx: GpuContext,
    readonly shape: GqaShape,
    readonly length: number,
    targetWorkgroups = 64,
  ) {
    const plan = planSplits(length, shape.kvHeads, 1, targetWorkgroups);
    this.splitCount = plan.splitCount;
    this.pagesPerSplit = plan.pagesPerSplit;
    const kvBytes = shape.kvHeads * length * shape.headDim * 4;
    this.k = ctx.storageBuffer("gqa-k", kvBytes);
    this.v = ctx.storageBuffer("gqa-v", kvBytes);
    this.#q = ctx.storageBuffer("gqa-q", shape.heads * shape.headDim * 4);
    this.#stats = ctx.storageBuffer("gqa-stats", plan.splitCount * shape.heads * 16);
    this.#acc = ctx.storageBuffer("gqa-acc", plan.splitCount * shape.heads * shape.headDim * 4);
    this.#out = ctx.storageBuffer("gqa-out", shape.heads * (shape.headDim + 1) * 4);
    const uniform = (bytes: number): GPUBuffer =>
      ctx.device.createBuffer({ size: bytes, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    this.#params = uniform(gqaUniforms.byteLength);
    this.#combineParams = uniform(combineUniforms.byteLength);
    this.#split = gqaSplitProgram(shape);
    // The MLA combine with D_c := d_h and one space is exactly the GQA split-KV combine.
    this.#combine = createMlaAttentionCombineProgram(
      cacheLayout(
        { heads: shape.heads, kvHeads: 1, ropeDims: 0, latentWidth: shape.headDim, headDim: shape.headDim, spaces: 1 },
        { latentBits: 8, latentGroup: 32, rope: "fp16" },
      ),
    );
    const q = ctx.device.queue;
    q.writeBuffer(this.#params, 0, gqaUniforms.pack({ totalLen: length, pagesPerSplit: plan.pagesPerSplit, splitCount: plan.splitCount, capacity: length, scale: 1 / Math.sqrt(shape.headDim) }));
    q.writeBuffer(this.#combineParams, 0, combineUniforms.pack({ splitCount: plan.splitCount, queryCount: 1, massOffset: shape.heads * shape.headDim }));
  }

  writeQuery(q: Float32Array): void {
    this.ctx.device.queue.writeBuffer(this.#q, 0, q);
  }

  async encode(enc: GPUCommandEncoder): Promise<void> {
    const [split, combine] = await Promise.all([this.ctx.pipeline(this.#split), this.ctx.pipeline(this.#combine)]);
    const d = this.ctx.device;
    const b1 = d.createBindGroup({
      layout: split.getBindGroupLayout(0),
      entries: [this.#params, this.#q, this.k, this.v, this.#stats, this.#acc].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const b2 = d.createBindGroup({
      layout: combine.getBindGroupLayout(0),
      entries: [this.#combineParams, this.#stats, this.#acc, this.#out].map((buffer, binding) => ({ binding, resource: { buffer } })),
    });
    const pass = enc.beginComputePass({ label: "gqa-baseline" });
    pass.setPipeline(split);
    pass.setBindGroup(0, b1);
    pass.dispatchWorkgroups(this.splitCount, this.shape.kvHeads);
    pass.setPipeline(combine);
    pass.setBindGroup(0, b2);
    pass.dispatchWorkgroups(this.shape.heads, 1);
    pass.end();
  }

  /** Output o [n_h][d_h] after a submitted step. */
  readOutput(): Promise<Float32Array> {
    return this.ctx.readFloat32(this.#out, 0, this.shape.heads * this.shape.headDim);
  }

  destroy(): void {
    for (const b of [this.k, this.v, this.#q, this.#stats, this.#acc, this.#out, this.#params, this.#combineParams]) b.destroy();
  }
}
