// Dequantize kernel: expands tokens [start, start + count) of one layer's stored cache to f32 rows
// [latent D_c | rope n_kv·r] — the "materialized" restore path (docs/method.md §8.4) and the check that the GPU reads the
// codec layout exactly. One thread per output value; the grid is folded into x/y under the dispatch limit.
import type { CacheLayout } from "./geometry.ts";
import { normalizeDispatch, shaderPreamble, uniformLayout, type KernelProgram } from "./program.ts";
import { KernelInputError } from "./errors.ts";
import { BufferUsage } from "./gpu-flags.ts";
import type { GpuContext } from "./gpu-context.ts";
import type { LatentCacheGpu } from "./latent-cache-gpu.ts";
import { CACHE_UNIFORMS, cacheReaderWgsl } from "./wgsl-cache.ts";

export const DEQUANT_WORKGROUP = 64;

export const dequantUniforms = uniformLayout([
  ["start", "u32"],
  ["count", "u32"],
  ["gridX", "u32"],
  ...CACHE_UNIFORMS,
] as const);

export function createMlaDequantizeProgram(layout: CacheLayout): KernelProgram {
  const g = layout.geometry;
  return {
    name: "mla-dequantize",
    cacheHint: `kv${g.kvHeads}-r${g.ropeDims}-dc${g.latentWidth}-lb${layout.encoding.latentBits}-lg${layout.latentGroup}-ax${layout.latentAxis[0]}-rb${layout.ropeBits}-wg${DEQUANT_WORKGROUP}`,
    workgroupSize: DEQUANT_WORKGROUP,
    getShaderSource: (features) => `${shaderPreamble(features)}
${dequantUniforms.wgsl}
${cacheReaderWgsl(layout, { cache: 1, tail: 2 }, features)}
@group(0) @binding(3) var<storage, read_write> outRows: array<f32>;

@compute @workgroup_size(${DEQUANT_WORKGROUP})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let idx = (wid.y * P.gridX + wid.x) * ${DEQUANT_WORKGROUP}u + t;
  if (idx >= P.count * TS) { return; }
  let row = idx / TS;
  let col = idx % TS;
  let tok = P.start + row;
  if (col < DC) {
    outRows[idx] = latentAt(tok, col);
  } else {
    let rc = col - DC;
    outRows[idx] = ropeAt(tok, rc / max(R, 1u), rc % max(R, 1u));
  }
}
`,
  };
}

/** Dequantizes tokens [start, start + count) of one layer to f32 rows [latent | rope] and reads them back. */
export async function dequantizeCacheGpu(
  ctx: GpuContext,
  cache: LatentCacheGpu,
  layer: number,
  start: number,
  count: number,
  opts: { poison?: boolean } = {},
): Promise<Float32Array> {
  const layout = cache.layout;
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > cache.length) {
    throw new KernelInputError(`token range [${start}, ${start + count}) is outside the cache's ${cache.length} tokens`);
  }
  const program = createMlaDequantizeProgram(layout);
  const pipeline = await ctx.pipeline(program);
  const values = count * layout.tailStride;
  const [gridX, gridY] = normalizeDispatch(Math.ceil(values / DEQUANT_WORKGROUP), ctx.device.limits.maxComputeWorkgroupsPerDimension);
  const d = ctx.device;
  const params = d.createBuffer({ label: "mla-dequantize-params", size: dequantUniforms.byteLength, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
  const out = ctx.storageBuffer("mla-dequantize-out", values * 4);
  try {
    const r = cache.regions;
    d.queue.writeBuffer(
      params,
      0,
      dequantUniforms.pack({
        start,
        count,
        gridX,
        sealedLen: cache.sealedLength,
        latCodesOff: r.latentCodes,
        latSzOff: r.latentScales,
        ropeCodesOff: r.ropeCodes,
        ropeSzOff: r.ropeScales,
      }),
    );
    if (opts.poison) ctx.poison(out);
    const bind = d.createBindGroup({
      label: program.name,
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: params } },
        { binding: 1, resource: { buffer: cache.layerBuffer(layer) } },
        { binding: 2, resource: { buffer: cache.tailBuffer(layer) } },
        { binding: 3, resource: { buffer: out } },
      ],
    });
    const enc = d.createCommandEncoder({ label: program.name });
    const pass = enc.beginComputePass({ label: program.name });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(gridX, gridY);
    pass.end();
    d.queue.submit([enc.finish()]);
    return await ctx.readFloat32(out, 0, values);
  } finally {
    params.destroy();
    out.destroy();
  }
}
