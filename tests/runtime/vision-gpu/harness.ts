// Runs the GPU vision tower (runtime/vision/qwen2_5_vl-vision-gpu.ts) on a set of requests in each weight format.
// Browser-safe: shared by the dawn.node child process and the Chromium page bundle. The inputs travel as one binary
// blob (encodeVisionInputs / decodeVisionInputs) so both sides see the same bytes.
import type { Qwen25VisionConfig } from "../../../checkpoint/families/qwen2_5_vl.ts";
import type { GpuContext } from "../../../kernels/gpu-context.ts";
import { planQwen25Vision, type VisionGrid } from "../../../runtime/vision/qwen2_5_vl-vision.ts";
import { Qwen25VisionGpu, visionSourceFromF32, type VisionGpuFormat } from "../../../runtime/vision/qwen2_5_vl-vision-gpu.ts";

export interface VisionRequest {
  readonly name: string;
  readonly grids: readonly VisionGrid[];
  readonly pixels: Float32Array;
}

export interface VisionInputs {
  readonly config: Qwen25VisionConfig;
  readonly weights: Map<string, Float32Array>;
  readonly requests: readonly VisionRequest[];
}

export interface VisionGpuResult {
  readonly format: VisionGpuFormat;
  readonly request: string;
  readonly out: number[];
  readonly ms: number;
  readonly weightBytes: number;
}

/** Blob: u32 header length, JSON header (config, tensor and request table), then the f32 arrays back to back. */
export function encodeVisionInputs(inp: VisionInputs): Uint8Array {
  const arrays: Float32Array[] = [];
  const tensors = [...inp.weights].map(([name, w]) => (arrays.push(w), { name, length: w.length }));
  const requests = inp.requests.map((r) => (arrays.push(r.pixels), { name: r.name, grids: r.grids, length: r.pixels.length }));
  const header = new TextEncoder().encode(JSON.stringify({ config: inp.config, tensors, requests }));
  const pad = (4 - ((4 + header.length) % 4)) % 4;
  const total = 4 + header.length + pad + arrays.reduce((s, a) => s + a.byteLength, 0);
  const out = new Uint8Array(total);
  new DataView(out.buffer).setUint32(0, header.length + pad, true);
  out.set(header, 4);
  out.fill(0x20, 4 + header.length, 4 + header.length + pad);
  let o = 4 + header.length + pad;
  for (const a of arrays) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), o);
    o += a.byteLength;
  }
  return out;
}

export function decodeVisionInputs(blob: Uint8Array): VisionInputs {
  const hl = new DataView(blob.buffer, blob.byteOffset).getUint32(0, true);
  const h = JSON.parse(new TextDecoder().decode(blob.subarray(4, 4 + hl))) as {
    config: Qwen25VisionConfig;
    tensors: { name: string; length: number }[];
    requests: { name: string; grids: VisionGrid[]; length: number }[];
  };
  const data = blob.slice(4 + hl);
  let o = 0;
  const take = (n: number) => {
    const a = new Float32Array(data.buffer, o * 4, n);
    o += n;
    return a;
  };
  const weights = new Map(h.tensors.map((t) => [t.name, take(t.length)]));
  const requests = h.requests.map((r) => ({ name: r.name, grids: r.grids, pixels: take(r.length) }));
  return { config: h.config, weights, requests };
}

export async function runVisionGpu(ctx: GpuContext, inp: VisionInputs, formats: readonly VisionGpuFormat[]): Promise<VisionGpuResult[]> {
  const results: VisionGpuResult[] = [];
  for (const format of formats) {
    const tower = Qwen25VisionGpu.upload(ctx, inp.config, visionSourceFromF32(inp.weights, format));
    try {
      for (const r of inp.requests) {
        let ms = 0;
        const out = await tower.run(planQwen25Vision(inp.config, r.grids), r.pixels, (t) => (ms = t.ms));
        results.push({ format, request: r.name, out: Array.from(out), ms, weightBytes: tower.weightBytes });
      }
    } finally {
      tower.destroy();
    }
  }
  return results;
}
