// Recording several kernel dispatches into one command encoder and one submission (the building block of "one submit
// per token"): each call names its program, its packed uniforms and its storage buffers (bindings 1..n in order).
import { BufferUsage } from "./gpu-flags.ts";
import type { GpuContext } from "./gpu-context.ts";
import type { KernelProgram } from "./program.ts";

export interface KernelCall {
  readonly program: KernelProgram;
  /** Packed `Params` (binding 0). */
  readonly uniforms: ArrayBuffer;
  /** Storage buffers for bindings 1, 2, … in the order the program declares them. */
  readonly buffers: readonly GPUBuffer[];
  /** Workgroup counts (x, y, z). */
  readonly grid: readonly [number, number, number];
}

/**
 * Compiles (cached) and records `calls` in order into one compute pass of one encoder, submits once and resolves when
 * the queue has finished them. Uniform buffers are created per call and destroyed afterwards.
 */
export async function submitCalls(ctx: GpuContext, calls: readonly KernelCall[], label = "kernels"): Promise<void> {
  const d = ctx.device;
  const enc = d.createCommandEncoder({ label });
  const params = await recordCalls(ctx, enc, calls, label);
  try {
    d.queue.submit([enc.finish()]);
    await d.queue.onSubmittedWorkDone();
    ctx.throwIfFailed();
  } finally {
    for (const p of params) p.destroy();
  }
}

/**
 * Records `calls` in order into one compute pass of `enc` (pipelines compiled or taken from the cache first). Returns
 * the per-call uniform buffers, which the caller destroys once the submission has completed.
 */
export async function recordCalls(ctx: GpuContext, enc: GPUCommandEncoder, calls: readonly KernelCall[], label = "kernels"): Promise<GPUBuffer[]> {
  const d = ctx.device;
  const pipelines = await Promise.all(calls.map((c) => ctx.pipeline(c.program)));
  const params: GPUBuffer[] = [];
  const pass = enc.beginComputePass({ label });
  calls.forEach((c, i) => {
    const p = d.createBuffer({ label: `${c.program.name}-params`, size: c.uniforms.byteLength, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST });
    params.push(p);
    d.queue.writeBuffer(p, 0, c.uniforms);
    const bind = d.createBindGroup({
      label: c.program.name,
      layout: pipelines[i].getBindGroupLayout(0),
      entries: [{ binding: 0, resource: { buffer: p } }, ...c.buffers.map((buffer, j) => ({ binding: j + 1, resource: { buffer } }))],
    });
    pass.setPipeline(pipelines[i]);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(c.grid[0], c.grid[1], c.grid[2]);
  });
  pass.end();
  return params;
}

/** A storage buffer holding `data` (padded to 16 bytes). */
export function uploadBuffer(ctx: GpuContext, label: string, data: ArrayBufferView): GPUBuffer {
  const buf = ctx.storageBuffer(label, data.byteLength);
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const padded = new Uint8Array(Math.ceil(bytes.length / 4) * 4);
  padded.set(bytes);
  ctx.device.queue.writeBuffer(buf, 0, padded);
  return buf;
}

/** Reads `count` u32 words from `src` at byte `offset`. */
export async function readUint32(ctx: GpuContext, src: GPUBuffer, offset: number, count: number): Promise<Uint32Array> {
  const f = await ctx.readFloat32(src, offset, count);
  return new Uint32Array(f.buffer, f.byteOffset, count);
}
