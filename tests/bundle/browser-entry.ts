// Browser side of bundle-chromium.test.ts: the loader with Cache Storage, and gpuWeightSink on Chromium's WebGPU.
import { parseBundleManifest } from "../../checkpoint/bundle/manifest.ts";
import { BufferUsage, MapModeRead } from "../../kernels/gpu-flags.ts";
import { cacheKey, cacheStorageBundleCache, gpuWeightSink, loadBundle, tensorArrays, tensorRouterSink, type LoadStats } from "../../runtime/loader/bundle-loader.ts";

const CACHE = "mla-edge-test";

async function loadWithCache(base: string): Promise<{ stats: LoadStats; lastProgress: [number, number] }> {
  const cache = await cacheStorageBundleCache(CACHE);
  let last: [number, number] = [0, 0];
  const r = await loadBundle(base, { cache, onProgress: (d, t) => (last = [d, t]) });
  return { stats: r.stats, lastProgress: last };
}

/** Overwrites the cached entry of shard `i` with damaged bytes (as a bad disk or a truncated write would). */
async function corruptCachedShard(base: string, i: number): Promise<string> {
  const m = parseBundleManifest(await (await fetch(base + "manifest.json")).json());
  const cache = await cacheStorageBundleCache(CACHE);
  const key = cacheKey(m.shards[i].sha256);
  const bytes = (await cache.get(key))!;
  bytes[100] ^= 0xff;
  await cache.put(key, bytes);
  return m.shards[i].file;
}

/** Loads into GPU buffers and compares every buffer read back with the array rebuilt from the raw shards. */
async function gpuLoad(base: string): Promise<{ adapter: string; buffers: number; mismatched: string[] }> {
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error("no WebGPU adapter");
  const device = await adapter.requestDevice();
  const m = parseBundleManifest(await (await fetch(base + "manifest.json")).json());
  const w = gpuWeightSink(device, m, BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC);
  await loadBundle(base, { cache: null, sink: w.sink, files: [] });
  const expected = new Map<string, Uint8Array>();
  for (const t of m.tensors) for (const [name, a] of tensorArrays(t)) expected.set(`${t.name}:${name}`, new Uint8Array(Math.max(4, Math.ceil((a.rows * a.rowBytes) / 4) * 4)));
  const router = tensorRouterSink(m, (s) => expected.get(`${s.tensor.name}:${s.array}`)!.set(s.bytes, s.arrayOffset));
  for (const [i, sh] of m.shards.entries()) await router.write(i, 0, new Uint8Array(await (await fetch(base + sh.file)).arrayBuffer()));
  const mismatched: string[] = [];
  for (const [key, want] of expected) {
    const src = w.buffers.get(key)!;
    const read = device.createBuffer({ size: src.size, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, read, 0, src.size);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(MapModeRead);
    const got = new Uint8Array(read.getMappedRange());
    if (got.length !== want.length || got.some((b, i) => b !== want[i])) mismatched.push(key);
    read.unmap();
    read.destroy();
  }
  const info = device.adapterInfo;
  device.destroy();
  return { adapter: info ? `${info.vendor} ${info.architecture}` : "", buffers: w.buffers.size, mismatched };
}

Object.assign(globalThis, { loadWithCache, corruptCachedShard, gpuLoad });
