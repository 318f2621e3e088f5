// Node side of `npm run bench:kernels -- --runtime node`: the same benchmark core as the Chromium page, on dawn.node
// (the `webgpu` package) with onnxruntime-web's WebGPU EP on the same device. dawn.node picks its Vulkan driver at
// process start (VK_ICD_FILENAMES), so kernels.bench.ts spawns this file; on a GPU machine it runs directly, also as
// an esbuild bundle. Prints ONE JSON object on stdout.
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { create, globals } from "webgpu";
import { runKernelBench, type OrtModule } from "../kernels/kernel-bench.ts";
import { kernelBenchReport } from "./kernels-report.ts";

const { values } = parseArgs({
  options: {
    json: { type: "boolean", default: false },
    contexts: { type: "string", default: "1024,4096,16384" },
    "min-ms": { type: "string", default: "1500" },
    "max-iters": { type: "string", default: "10" },
    batch: { type: "string", default: "20" },
    "peak-gbs": { type: "string" },
    "ort-dir": { type: "string", default: resolve(process.cwd(), "node_modules/onnxruntime-web/dist") },
  },
});

Object.assign(globalThis, globals);
const gpu = create([]) as unknown as GPU;
// onnxruntime-web's WebGPU EP asks `navigator.gpu` for its device; Node 20 has no navigator.
Object.defineProperty(globalThis, "navigator", { value: { gpu, userAgent: `node ${process.version}` }, configurable: true });

/**
 * onnxruntime-web's threaded wasm writes from views of its SharedArrayBuffer memory; dawn.node's writeBuffer rejects
 * those ("Invalid argument") where browsers accept them, so copy such views into a plain buffer first.
 */
function acceptSharedMemoryWrites(queue: GPUQueue): void {
  const proto = Object.getPrototypeOf(queue) as { writeBuffer: (...args: unknown[]) => void };
  const original = proto.writeBuffer;
  proto.writeBuffer = function (this: GPUQueue, buffer: unknown, offset: unknown, data: unknown, ...rest: unknown[]) {
    if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) {
      const copy = new Uint8Array(data.byteLength);
      copy.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      const unit = data instanceof DataView ? 1 : (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
      const [dataOffset = 0, size] = rest as [number | undefined, number | undefined];
      return original.call(this, buffer, offset, copy, dataOffset * unit, size === undefined ? undefined : size * unit);
    }
    return original.call(this, buffer, offset, data, ...rest);
  };
}

let code = 0;
try {
  const ortDir = values["ort-dir"];
  const ort = (await import(pathToFileURL(resolve(ortDir, "ort.webgpu.min.mjs")).href)) as OrtModule;
  ort.env.wasm.wasmPaths = `${ortDir}/`;
  // One device for both, with the adapter's buffer limits: the f32 GQA baseline at 64K+ tokens is > 128 MiB per binding.
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error("requestAdapter() returned null");
  const device = await adapter.requestDevice({
    requiredFeatures: adapter.features.has("shader-f16") ? ["shader-f16"] : [],
    requiredLimits: {
      maxBufferSize: adapter.limits.maxBufferSize,
      maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    },
  });
  acceptSharedMemoryWrites(device.queue);
  ort.env.webgpu.device = device;
  const r = await runKernelBench(ort, {
    contexts: values.contexts.split(",").map(Number),
    minMs: Number(values["min-ms"]),
    maxIters: Number(values["max-iters"]),
    batch: Number(values.batch),
  });
  const emulated = /swiftshader/i.test(r.adapter);
  const peak = values["peak-gbs"] ? Number(values["peak-gbs"]) : undefined;
  const out = kernelBenchReport(r, { runtime: `Node ${process.version} dawn.node WebGPU`, emulated, peakGBs: peak });
  console.log(values.json ? JSON.stringify(out) : JSON.stringify(out, null, 2));
} catch (e) {
  console.log(JSON.stringify({ bench: "kernels", fatal: `${(e as Error).name}: ${(e as Error).message}` }));
  code = 1;
}
// dawn.node keeps the process alive otherwise (platform.md §9.2).
process.exit(code);
