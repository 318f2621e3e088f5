// Loads a browser bundle (docs/bundle.md): fetches manifest.json, then streams every shard with fetch(), hashing it as
// it arrives (SHA-256, @noble/hashes: incremental, identical in browsers, workers and Node), handing it to a sink in
// 256-byte-aligned windows (so a GPU engine can queue.writeBuffer each window as it lands), reporting progress as
// (bytesDone, bytesTotal), and keeping verified shards in a cache (Cache Storage in browsers, a folder in Node) so a
// reload downloads nothing but the manifest. A cached shard whose hash no longer matches is dropped and fetched again;
// a fetched shard whose hash does not match is refused with BundleError("hash_mismatch") and never cached.
// Browser-safe: no Node imports.

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import {
  BUNDLE_ALIGN,
  BundleError,
  MANIFEST_FILE,
  parseBundleManifest,
  type BundleArray,
  type BundleManifest,
  type BundleTensorEntry,
} from "../../checkpoint/bundle/manifest.ts";
import { BufferUsage } from "../../kernels/gpu-flags.ts";

/** Content-addressed byte store: keys are `sha256-<hex>` of the bytes stored under them. */
export interface BundleCache {
  get(key: string): Promise<Uint8Array | null>;
  put(key: string, bytes: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
}

/**
 * Receives each shard in consecutive windows: `offset` is a multiple of 256, the window's length a multiple of 256.
 * Windows of one shard arrive in order; with `concurrency` > 1 windows of different shards interleave.
 */
export interface ShardSink {
  write(shard: number, offset: number, bytes: Uint8Array): void | Promise<void>;
}

export type LoadProgress = (bytesDone: number, bytesTotal: number) => void;

export interface LoadBundleOptions {
  /** `globalThis.fetch` by default. */
  readonly fetch?: (url: string, init?: { signal?: AbortSignal }) => Promise<Response>;
  /** null: no cache. Default: Cache Storage when `caches` exists, else none (Node passes a FolderBundleCache). */
  readonly cache?: BundleCache | null;
  /**
   * Where shard windows go; or a function making the sink from the parsed manifest (e.g. GPU buffers sized by its
   * tensor table), called once before any shard is fetched.
   */
  readonly sink?: ShardSink | ((manifest: BundleManifest) => ShardSink);
  readonly onProgress?: LoadProgress;
  readonly signal?: AbortSignal;
  /** Sink window size; a multiple of 256 (default 4 MiB). */
  readonly windowBytes?: number;
  /**
   * Shards / files downloaded at once (default 3). Each in-flight shard is held in memory until verified (≤ 64 MiB);
   * sink writes of one shard stay in order, writes of different shards interleave.
   */
  readonly concurrency?: number;
  /** Side files (tokenizer, template, preprocessor config) to load too; default all of the manifest's files. */
  readonly files?: readonly string[];
}

export interface LoadStats {
  /** Bytes of shards and side files that came over the network (the manifest not included). */
  readonly bytesFetched: number;
  readonly bytesFromCache: number;
  readonly manifestBytes: number;
  readonly fetched: readonly string[];
  readonly fromCache: readonly string[];
  /** Cached entries dropped because their hash no longer matched (then fetched again). */
  readonly corruptCached: readonly string[];
}

export interface LoadedBundle {
  readonly manifest: BundleManifest;
  /** Side files by name. */
  readonly files: ReadonlyMap<string, Uint8Array>;
  readonly stats: LoadStats;
}

export const cacheKey = (sha256Hex: string): string => `sha256-${sha256Hex}`;

const defaultFetch = (url: string, init?: { signal?: AbortSignal }) => globalThis.fetch(url, init);

/** Cache Storage (browsers, service workers); entries live under a synthetic URL per content hash. */
export async function cacheStorageBundleCache(name = "mla-edge-bundles"): Promise<BundleCache> {
  const cache = await caches.open(name);
  const url = (key: string) => `https://mla-edge.invalid/${key}`;
  return {
    async get(key) {
      const r = await cache.match(url(key));
      return r ? new Uint8Array(await r.arrayBuffer()) : null;
    },
    async put(key, bytes) {
      await cache.put(url(key), new Response(bytes.slice().buffer, { headers: { "content-type": "application/octet-stream" } }));
    },
    async delete(key) {
      await cache.delete(url(key));
    },
  };
}

function joinUrl(base: string, file: string): string {
  return base.endsWith("/") ? base + file : `${base}/${file}`;
}

/** Loads the bundle at `baseUrl` (the folder holding manifest.json). */
export async function loadBundle(baseUrl: string, options: LoadBundleOptions = {}): Promise<LoadedBundle> {
  const doFetch = options.fetch ?? defaultFetch;
  const cache = options.cache === undefined ? (typeof caches !== "undefined" ? await cacheStorageBundleCache() : null) : options.cache;
  const windowBytes = options.windowBytes ?? 4 * 1024 * 1024;
  const concurrency = options.concurrency ?? 3;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError("concurrency must be a positive integer");
  if (windowBytes <= 0 || windowBytes % BUNDLE_ALIGN !== 0) throw new RangeError(`windowBytes must be a positive multiple of ${BUNDLE_ALIGN}`);
  const signal = options.signal;

  const manifestUrl = joinUrl(baseUrl, MANIFEST_FILE);
  const mres = await fetchOk(doFetch, manifestUrl, signal);
  const mtext = await mres.text();
  let mjson: unknown;
  try {
    mjson = JSON.parse(mtext);
  } catch (e) {
    throw new BundleError("bad_manifest", `${manifestUrl} is not JSON: ${(e as Error).message}`, { cause: e });
  }
  const manifest = parseBundleManifest(mjson);
  const sink = typeof options.sink === "function" ? options.sink(manifest) : options.sink;

  const wanted = options.files ?? manifest.files.map((f) => f.file);
  const sideFiles = wanted.map((name) => {
    const f = manifest.files.find((x) => x.file === name);
    if (!f) throw new BundleError("bad_manifest", `manifest lists no file ${name}`);
    return f;
  });
  const items = [
    ...manifest.shards.map((s, i) => ({ ...s, shard: i as number | null })),
    ...sideFiles.map((f) => ({ ...f, shard: null as number | null })),
  ];
  const total = items.reduce((s, x) => s + x.size, 0);
  let done = 0;
  const progress = (n: number) => {
    done += n;
    options.onProgress?.(done, total);
  };
  options.onProgress?.(0, total);
  const stats = { bytesFetched: 0, bytesFromCache: 0, manifestBytes: mtext.length, fetched: [] as string[], fromCache: [] as string[], corruptCached: [] as string[] };
  const files = new Map<string, Uint8Array>();

  // A pool of `concurrency` downloads; the first failure cancels the others (internal abort) and is the one thrown.
  const stop = new AbortController();
  const anySignal = (AbortSignal as unknown as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  const fetchSignal = signal && anySignal ? anySignal([signal, stop.signal]) : (signal ?? stop.signal);
  let firstError: unknown = null;
  const loadItem = async (item: (typeof items)[number]) => {
    if (signal?.aborted) throw new BundleError("aborted", "bundle load aborted");
    const key = cacheKey(item.sha256);
    const deliver = async (bytes: Uint8Array, from: number, to: number) => {
      if (item.shard === null || !sink) return;
      for (let o = from; o < to; o += windowBytes) await sink.write(item.shard, o, bytes.subarray(o, Math.min(to, o + windowBytes)));
    };
    let bytes: Uint8Array | null = null;
    if (cache) {
      const cached = await cache.get(key);
      if (cached) {
        if (cached.byteLength === item.size && bytesToHex(sha256(cached)) === item.sha256) {
          bytes = cached;
          await deliver(bytes, 0, bytes.byteLength);
          progress(bytes.byteLength);
          stats.bytesFromCache += bytes.byteLength;
          stats.fromCache.push(item.file);
        } else {
          stats.corruptCached.push(item.file);
          await cache.delete(key);
        }
      }
    }
    if (bytes === null) {
      bytes = await fetchVerified(doFetch, joinUrl(baseUrl, item.file), item, fetchSignal, windowBytes, deliver, progress);
      stats.bytesFetched += bytes.byteLength;
      stats.fetched.push(item.file);
      if (cache) await cache.put(key, bytes);
    }
    if (item.shard === null) files.set(item.file, bytes);
  };
  let next = 0;
  const worker = async () => {
    while (firstError === null && next < items.length) {
      const item = items[next++];
      try {
        await loadItem(item);
      } catch (e) {
        if (firstError === null) firstError = signal?.aborted ? new BundleError("aborted", "bundle load aborted", { cause: e }) : e;
        stop.abort();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, items.length)) }, worker));
  if (firstError !== null) throw firstError;
  return { manifest, files, stats };
}

async function fetchOk(doFetch: NonNullable<LoadBundleOptions["fetch"]>, url: string, signal: AbortSignal | undefined): Promise<Response> {
  let res: Response;
  try {
    res = await doFetch(url, { signal });
  } catch (e) {
    if (signal?.aborted) throw new BundleError("aborted", `fetch of ${url} aborted`, { cause: e });
    throw new BundleError("fetch_failed", `fetch of ${url} failed: ${(e as Error).message}`, { cause: e });
  }
  if (!res.ok) throw new BundleError("fetch_failed", `fetch of ${url} returned HTTP ${res.status}`);
  return res;
}

/** Streams one file into a buffer of its manifest size, delivering aligned windows as they complete, then checks the hash. */
async function fetchVerified(
  doFetch: NonNullable<LoadBundleOptions["fetch"]>,
  url: string,
  item: { file: string; size: number; sha256: string },
  signal: AbortSignal | undefined,
  windowBytes: number,
  deliver: (bytes: Uint8Array, from: number, to: number) => Promise<void>,
  progress: (n: number) => void,
): Promise<Uint8Array> {
  const res = await fetchOk(doFetch, url, signal);
  const buf = new Uint8Array(item.size);
  const hash = sha256.create();
  let got = 0;
  let delivered = 0;
  const body = res.body;
  const consume = async (chunk: Uint8Array) => {
    if (got + chunk.byteLength > item.size) {
      throw new BundleError("size_mismatch", `${item.file}: server sent more than the manifest's ${item.size} bytes`);
    }
    buf.set(chunk, got);
    hash.update(chunk);
    got += chunk.byteLength;
    progress(chunk.byteLength);
    const ready = Math.floor((got - delivered) / windowBytes) * windowBytes;
    if (ready > 0) {
      await deliver(buf, delivered, delivered + ready);
      delivered += ready;
    }
  };
  if (body) {
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        await consume(value);
      }
    } catch (e) {
      await reader.cancel().catch(() => undefined);
      if (e instanceof BundleError) throw e;
      if (signal?.aborted) throw new BundleError("aborted", `fetch of ${url} aborted`, { cause: e });
      throw new BundleError("fetch_failed", `reading ${url} failed: ${(e as Error).message}`, { cause: e });
    }
  } else {
    await consume(new Uint8Array(await res.arrayBuffer()));
  }
  if (got !== item.size) throw new BundleError("size_mismatch", `${item.file}: got ${got} bytes, the manifest says ${item.size}`);
  const actual = bytesToHex(hash.digest());
  if (actual !== item.sha256) {
    throw new BundleError("hash_mismatch", `${item.file}: SHA-256 ${actual} does not match the manifest's ${item.sha256}; refusing it`);
  }
  await deliver(buf, delivered, got);
  return buf;
}

/** Which array of a tensor a slice belongs to. */
export type BundleArrayName = "b" | "scales" | "zeroPoints" | "data";

export interface TensorSlice {
  readonly tensor: BundleTensorEntry;
  readonly array: BundleArrayName;
  /** Byte offset of `bytes` within the whole (unsplit) array. */
  readonly arrayOffset: number;
  /** Length rounded up to a multiple of 4 with the shard's padding bytes (WebGPU writeBuffer needs it). */
  readonly bytes: Uint8Array;
}

export function tensorArrays(t: BundleTensorEntry): Array<[BundleArrayName, BundleArray]> {
  if (t.kind === "plain") return [["data", t.data]];
  const out: Array<[BundleArrayName, BundleArray]> = [["b", t.b], ["scales", t.scales]];
  if (t.zeroPoints) out.push(["zeroPoints", t.zeroPoints]);
  return out;
}

/**
 * A sink that routes shard windows to tensor arrays: `onSlice` gets, for each piece overlapping a window, the bytes and
 * where they go in their array. Pieces start 256-aligned in the shard and windows are 256-aligned, so every slice's
 * arrayOffset is rowStart·rowBytes + a multiple of 256.
 */
export function tensorRouterSink(manifest: BundleManifest, onSlice: (slice: TensorSlice) => void | Promise<void>): ShardSink {
  const byShard: Array<Array<{ tensor: BundleTensorEntry; array: BundleArrayName; offset: number; end: number; arrayBase: number }>> =
    manifest.shards.map(() => []);
  for (const t of manifest.tensors) {
    for (const [array, a] of tensorArrays(t)) {
      for (const p of a.pieces) byShard[p.shard].push({ tensor: t, array, offset: p.offset, end: p.offset + p.byteLength, arrayBase: p.rowStart * a.rowBytes });
    }
  }
  for (const list of byShard) list.sort((x, y) => x.offset - y.offset);
  return {
    async write(shard, offset, bytes) {
      const wEnd = offset + bytes.byteLength;
      for (const p of byShard[shard]) {
        if (p.end <= offset || p.offset >= wEnd) continue;
        const s = Math.max(p.offset, offset);
        const e = Math.min(p.end, wEnd);
        const e4 = Math.min(wEnd, s + Math.ceil((e - s) / 4) * 4);
        await onSlice({ tensor: p.tensor, array: p.array, arrayOffset: p.arrayBase + (s - p.offset), bytes: bytes.subarray(s - offset, e4 - offset) });
      }
    },
  };
}

/** The slice of WebGPU a weight sink needs (a GPUDevice satisfies it). */
export interface GpuWeightDevice {
  createBuffer(desc: { size: number; usage: number; label?: string }): GPUBuffer;
  readonly queue: { writeBuffer(buffer: GPUBuffer, offset: number, data: Uint8Array): void };
}

export interface GpuWeights {
  readonly sink: ShardSink;
  /** One STORAGE | COPY_DST buffer per tensor array, sized to a multiple of 4; key `${tensor}:${array}`. */
  readonly buffers: ReadonlyMap<string, GPUBuffer>;
  readonly bytes: number;
}

/**
 * GPU buffers for every tensor array of the bundle, filled by queue.writeBuffer as shard windows arrive: no CPU copy of
 * the whole model is ever held. Combine with loadBundle({ sink }). Aliased names (tied head) share the buffers.
 */
export function gpuWeightSink(
  device: GpuWeightDevice,
  manifest: BundleManifest,
  /** Buffer usage flags; add COPY_SRC to read weights back (tests). */
  usage: number = BufferUsage.STORAGE | BufferUsage.COPY_DST,
): GpuWeights {
  const buffers = new Map<string, GPUBuffer>();
  let bytes = 0;
  for (const t of manifest.tensors) {
    for (const [array, a] of tensorArrays(t)) {
      const size = Math.max(4, Math.ceil((a.rows * a.rowBytes) / 4) * 4);
      bytes += size;
      buffers.set(`${t.name}:${array}`, device.createBuffer({ size, usage, label: `${t.name}:${array}` }));
    }
  }
  const sink = tensorRouterSink(manifest, (s) => {
    const buf = buffers.get(`${s.tensor.name}:${s.array}`)!;
    device.queue.writeBuffer(buf, s.arrayOffset, s.bytes);
  });
  return { sink, buffers, bytes };
}
