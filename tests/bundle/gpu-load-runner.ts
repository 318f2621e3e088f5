// Child process of gpu-load.test.ts (dawn.node reads its Vulkan environment at start): loads a served bundle through
// gpuWeightSink into real WebGPU buffers, reads every buffer back, and compares it with the array reassembled from the
// shard files on disk. Prints one JSON line.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { create, globals } from "webgpu";
import { parseBundleManifest } from "../../checkpoint/bundle/manifest.ts";
import { BufferUsage, MapModeRead } from "../../kernels/gpu-flags.ts";
import { gpuWeightSink, loadBundle, tensorArrays, tensorRouterSink } from "../../runtime/loader/bundle-loader.ts";

Object.assign(globalThis, globals);
const [baseUrl, bundleDir] = process.argv.slice(2);
let code = 0;
try {
  const gpu = create([]) as unknown as GPU;
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const device = await adapter.requestDevice();
  const manifest = parseBundleManifest(JSON.parse(await readFile(join(bundleDir, "manifest.json"), "utf8")));
  const weights = gpuWeightSink(device, manifest, BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC);
  let progressEvents = 0;
  const loaded = await loadBundle(baseUrl, { cache: null, sink: weights.sink, files: [], windowBytes: 64 * 1024, onProgress: () => progressEvents++ });

  const expected = new Map<string, Uint8Array>();
  for (const t of manifest.tensors) for (const [name, a] of tensorArrays(t)) expected.set(`${t.name}:${name}`, new Uint8Array(Math.max(4, Math.ceil((a.rows * a.rowBytes) / 4) * 4)));
  const router = tensorRouterSink(manifest, (s) => expected.get(`${s.tensor.name}:${s.array}`)!.set(s.bytes, s.arrayOffset));
  for (const [i, sh] of manifest.shards.entries()) await router.write(i, 0, new Uint8Array(await readFile(join(bundleDir, sh.file))));

  const mismatched: string[] = [];
  for (const [key, want] of expected) {
    const src = weights.buffers.get(key)!;
    const read = device.createBuffer({ size: src.size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, read, 0, src.size);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(MapModeRead);
    const got = new Uint8Array(read.getMappedRange().slice(0));
    read.unmap();
    read.destroy();
    if (Buffer.compare(Buffer.from(got), Buffer.from(want)) !== 0) {
      if (process.env.DEBUG_GPU_LOAD) console.error(key, [...got.slice(0, 16)], [...want.slice(0, 16)], got.length, want.length);
      mismatched.push(key);
    }
  }
  console.log(
    JSON.stringify({
      adapter: device.adapterInfo ? `${device.adapterInfo.vendor} ${device.adapterInfo.architecture} ${device.adapterInfo.description}` : "",
      buffers: weights.buffers.size,
      gpuBytes: weights.bytes,
      bytesFetched: loaded.stats.bytesFetched,
      progressEvents,
      mismatched,
    }),
  );
  device.destroy();
} catch (e) {
  console.log(JSON.stringify({ fatal: `${(e as Error).name}: ${(e as Error).message}` }));
  code = 1;
}
process.exit(code);
