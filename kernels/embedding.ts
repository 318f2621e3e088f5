// Quantized embedding gather: out[t, k] = table[ids[t], k] for a table in any linear weight layout (MatMulNBits int4/int8
// rows with N = vocabulary, K = hidden; f16; f32). One thread per output value, grid folded into x/y. A table split in
// row ranges (past the device's binding limit) is gathered by one call per part: each writes the rows of its ids.
import { KernelInputError } from "./errors.ts";
import type { GpuContext } from "./gpu-context.ts";
import { kBlocksOf, weightReaderWgsl, type GpuWeights, type SplitGpuWeights, type WeightFormat } from "./matmul-nbits.ts";
import { normalizeDispatch, shaderPreamble, uniformLayout, type KernelProgram } from "./program.ts";
import { submitCalls, uploadBuffer, type KernelCall } from "./dispatch.ts";

export const EMBEDDING_WORKGROUP = 256;

export const embeddingUniforms = uniformLayout([
  ["T", "u32"],
  ["N", "u32"],
  ["K", "u32"],
  ["kBlocks", "u32"],
  ["gridX", "u32"],
  /** The part's first row in the whole table, and the whole table's rows. */
  ["rowStart", "u32"],
  ["total", "u32"],
] as const);

/**
 * Bindings: 0 params, 1 ids u32 [T], 2.. table rows [rowStart, rowStart + N), then out f32 [T, K]. A token whose id is
 * in the part's rows gets its row; ids ≥ total get zeros from the part at row 0 (no out-of-range read); other ids are
 * another part's.
 */
export function createEmbeddingProgram(f: WeightFormat): KernelProgram {
  const outB = 2 + (f.kind === "nbits" ? (f.zeroPoints ? 3 : 2) : 1);
  const hint = f.kind === "nbits" ? `q${f.bits}-b${f.block}-${f.zeroPoints ? "zp" : "nozp"}` : f.kind;
  return {
    name: "embedding-gather",
    cacheHint: `${hint}-wg${EMBEDDING_WORKGROUP}`,
    workgroupSize: EMBEDDING_WORKGROUP,
    getShaderSource: (features) => `${shaderPreamble(features)}
${embeddingUniforms.wgsl}
@group(0) @binding(1) var<storage, read> ids: array<u32>;
${weightReaderWgsl(f, 2, features)}
@group(0) @binding(${outB}) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(${EMBEDDING_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let idx = (wid.y * P.gridX + wid.x) * ${EMBEDDING_WORKGROUP}u + t;
  if (idx >= P.T * P.K) { return; }
  let tok = idx / P.K;
  let k = idx % P.K;
  let id = ids[tok];
  if (id >= P.rowStart && id - P.rowStart < P.N) {
    out[idx] = wAt(id - P.rowStart, k);
  } else if (P.rowStart == 0u && id >= P.total) {
    out[idx] = 0.0;
  }
}
`,
  };
}

export function embeddingCall(ctx: GpuContext, table: GpuWeights, ids: GPUBuffer, tokens: number, out: GPUBuffer, part: { readonly rowStart: number; readonly total: number } = { rowStart: 0, total: table.n }): KernelCall {
  if (!Number.isInteger(tokens) || tokens < 1) throw new KernelInputError(`token count must be a positive integer, got ${tokens}`);
  if (out.size < tokens * table.k * 4) throw new KernelInputError(`out holds ${out.size} bytes; [${tokens}, ${table.k}] f32 needs ${tokens * table.k * 4}`);
  const [gx, gy] = normalizeDispatch(Math.ceil((tokens * table.k) / EMBEDDING_WORKGROUP), ctx.device.limits.maxComputeWorkgroupsPerDimension);
  const kBlocks = table.format.kind === "nbits" ? kBlocksOf(table.k, table.format.block) : 0;
  return {
    program: createEmbeddingProgram(table.format),
    uniforms: embeddingUniforms.pack({ T: tokens, N: table.n, K: table.k, kBlocks, gridX: gx, rowStart: part.rowStart, total: part.total }),
    buffers: [ids, ...table.buffers, out],
    grid: [gx, gy, 1],
  };
}

/** The gather over a table split in row ranges (uploadWeightsSplit): one call per part, together every row. */
export function embeddingSplitCalls(ctx: GpuContext, table: SplitGpuWeights, ids: GPUBuffer, tokens: number, out: GPUBuffer): KernelCall[] {
  return table.parts.map((p) => embeddingCall(ctx, p.weights, ids, tokens, out, { rowStart: p.rowStart, total: table.n }));
}

/** Gathers rows `ids` (each < N, else KernelInputError) and reads them back as f32 [T, K]. */
export async function runEmbedding(ctx: GpuContext, table: GpuWeights, ids: Uint32Array, opts: { poison?: boolean } = {}): Promise<Float32Array> {
  for (const id of ids) if (id >= table.n) throw new KernelInputError(`token id ${id} is outside the vocabulary of ${table.n}`);
  const ib = uploadBuffer(ctx, "embedding-ids", ids);
  const ob = ctx.storageBuffer("embedding-out", ids.length * table.k * 4);
  try {
    if (opts.poison) ctx.poison(ob);
    await submitCalls(ctx, [embeddingCall(ctx, table, ib, ids.length, ob)], "embedding");
    return await ctx.readFloat32(ob, 0, ids.length * table.k);
  } finally {
    ib.destroy();
    ob.destroy();
  }
}
