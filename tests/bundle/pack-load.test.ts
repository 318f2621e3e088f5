// pack → manifest → load through a local HTTP server: tensor bytes against the source checkpoint (f64 dequantization
// within each block's bound, plain tensors exact), shards ≤ the limit with split tensors, progress events, SHA-256
// verification, the folder cache (second load fetches zero shard bytes), a corrupted cached shard dropped and fetched
// again, a corrupted served shard refused with BundleError("hash_mismatch"), and pack's typed errors with no
// half-written bundle. Planted bugs seen failing before commit: loader skipping the hash check of cached entries
// (corrupt-cache test fails); router dropping the 4-byte rounding (the tensorRouterSink test fails).
import { createServer, type Server } from "node:http";
import { cp, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BundleError, findBundleTensor, parseBundleManifest, type BundleManifest, type QuantizedTensorEntry } from "../../checkpoint/bundle/manifest.ts";
import { dequantizeMatMulNBits, type MatMulNBitsWeight } from "../../checkpoint/bundle/matmul-nbits.ts";
import { f16ToF32 } from "../../format/codec/fp16.ts";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import { main } from "../../convert/cli/main.ts";
import { PackError } from "../../convert/pack/errors.ts";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import { gpuWeightSink, loadBundle, tensorArrays, tensorRouterSink, type GpuWeightDevice } from "../../runtime/loader/bundle-loader.ts";
import { FolderBundleCache } from "../../runtime/loader/folder-cache.node.ts";
import { FOLDER_BASE, folderFetch } from "../../runtime/loader/folder-fetch.node.ts";

const TINY = resolve("fixtures/tiny-qwen-vl");
const MINI = resolve("fixtures/qwen25vl-mini");

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "mla-bundle-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Reassembles every tensor array from shard bytes through the router sink (as the GPU sink would see them). */
/** Byte equality without vitest's element-wise deep diff (slow on megabytes). */
const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;

async function arraysFromShards(dir: string, m: BundleManifest): Promise<Map<string, Uint8Array>> {
  const arrays = new Map<string, Uint8Array>();
  for (const t of m.tensors) for (const [name, a] of tensorArrays(t)) arrays.set(`${t.name}:${name}`, new Uint8Array(Math.ceil((a.rows * a.rowBytes) / 4) * 4));
  const sink = tensorRouterSink(m, (s) => {
    expect(s.bytes.byteLength % 4).toBe(0);
    arrays.get(`${s.tensor.name}:${s.array}`)!.set(s.bytes, s.arrayOffset);
  });
  for (const [i, sh] of m.shards.entries()) {
    const bytes = new Uint8Array(await readFile(join(dir, sh.file)));
    for (let o = 0; o < bytes.byteLength; o += 4096) await sink.write(i, o, bytes.subarray(o, Math.min(bytes.byteLength, o + 4096)));
  }
  return arrays;
}

function asWeight(t: QuantizedTensorEntry, arrays: Map<string, Uint8Array>): MatMulNBitsWeight {
  const s = arrays.get(`${t.name}:scales`)!;
  return {
    n: t.shape[0],
    k: t.shape[1],
    bits: t.bits,
    block: t.block,
    b: arrays.get(`${t.name}:b`)!.subarray(0, t.b.rows * t.b.rowBytes),
    scales: new Uint16Array(s.buffer, s.byteOffset, t.scales.rows * t.kBlocks),
    zeroPoints: t.zeroPoints ? arrays.get(`${t.name}:zeroPoints`)!.subarray(0, t.zeroPoints.rows * t.zeroPoints.rowBytes) : null,
  };
}

/** Every quantized element within its block's bound of the source, plain tensors equal to the source (f32) or its f16. */
async function checkAgainstSource(modelDir: string, bundle: string, m: BundleManifest, extraFiles: string[] = []): Promise<number> {
  const arrays = await arraysFromShards(bundle, m);
  const ckpt = await openCheckpointDir(modelDir, { extraFiles });
  let checked = 0;
  try {
    for (const t of m.tensors) {
      const src = await ckpt.source.readFloat32(t.name).catch(() => null);
      if (src === null) continue;
      if (t.kind === "matmul_nbits") {
        const q = asWeight(t, arrays);
        const d = dequantizeMatMulNBits(q);
        const [n, k] = t.shape;
        for (let row = 0; row < n; row++) {
          for (let j = 0; j < t.kBlocks; j++) {
            const s = Math.abs(f16ToF32(q.scales[row * t.kBlocks + j]));
            for (let kk = j * t.block; kk < Math.min(k, (j + 1) * t.block); kk++) {
              const err = Math.abs(d[row * k + kk] - src[row * k + kk]);
              if (!(err <= s * 1.000001 + 1e-12)) throw new Error(`${t.name}[${row}, ${kk}]: error ${err} > scale ${s}`);
            }
          }
        }
      } else if (t.dtype === "f32") {
        const a = arrays.get(`${t.name}:data`)!;
        expect(same(new Uint8Array(a.buffer, 0, src.byteLength), new Uint8Array(src.buffer, src.byteOffset, src.byteLength)), t.name).toBe(true);
      } else if (t.dtype === "f16") {
        const a = arrays.get(`${t.name}:data`)!;
        const h = new Uint16Array(a.buffer, 0, src.length);
        for (let i = 0; i < src.length; i++) if (Math.abs(f16ToF32(h[i]) - src[i]) > Math.abs(src[i]) * 2 ** -11 + 2 ** -24) throw new Error(`${t.name}[${i}] f16`);
      }
      checked++;
    }
  } finally {
    await ckpt.source.close();
  }
  return checked;
}

describe("mla-edge pack", () => {
  it("tiny-qwen-vl, int4 block 32, 8 KiB shards: every tensor matches the source, tensors split at row boundaries", async () => {
    const out = join(work, "tiny-int4");
    const r = await packBundle(TINY, out, { maxShardBytes: 8 * 1024 });
    const m = parseBundleManifest(JSON.parse(await readFile(join(out, "manifest.json"), "utf8")));
    expect(m).toEqual(r.manifest);
    expect(m.shards.length).toBeGreaterThan(5);
    for (const s of m.shards) expect(s.size).toBeLessThanOrEqual(8 * 1024);
    expect(m.tensors.some((t) => t.kind === "matmul_nbits" && t.b.pieces.length > 1)).toBe(true);
    const embed = findBundleTensor(m, "model.embed_tokens.weight");
    expect(embed.kind).toBe("matmul_nbits");
    expect(findBundleTensor(m, "lm_head.weight").name).toBe("lm_head.weight"); // untied: stored
    expect(findBundleTensor(m, "model.norm.weight")).toMatchObject({ kind: "plain", dtype: "f32" });
    expect(findBundleTensor(m, "visual.patch_embed.weight")).toMatchObject({ kind: "plain", dtype: "f16" });
    expect(m.tokenizer.tokenizer).toBe("tokenizer.json");
    expect(await checkAgainstSource(TINY, out, m, ["visual.safetensors"])).toBe(m.tensors.length);
  });

  it("qwen25vl-mini (sharded bf16, tied): int8 + zero points + int8 vision, lm_head stored once as an alias", async () => {
    const out = join(work, "mini-int8");
    const r = await packBundle(MINI, out, { weights: "int8", block: 64, zeroPoints: true, vision: "int8", maxShardBytes: 1024 * 1024 });
    const m = r.manifest;
    expect(m.aliases).toEqual({ "lm_head.weight": "model.embed_tokens.weight" });
    expect(m.tensors.some((t) => t.name === "lm_head.weight")).toBe(false);
    const embed = findBundleTensor(m, "lm_head.weight") as QuantizedTensorEntry;
    expect(embed).toMatchObject({ name: "model.embed_tokens.weight", bits: 8, block: 64, shape: [151936, 64] });
    expect(embed.b.pieces.length).toBeGreaterThan(5); // 9.7 MB of codes over 1 MiB shards
    expect(findBundleTensor(m, "visual.blocks.0.attn.qkv.weight")).toMatchObject({ kind: "matmul_nbits", bits: 8 });
    expect(m.tokenizer).toEqual({ tokenizer: "tokenizer.json", tokenizerConfig: "tokenizer_config.json", chatTemplate: "chat_template.json" });
    expect(m.preprocessorConfig).toEqual(JSON.parse(await readFile(join(MINI, "preprocessor_config.json"), "utf8")));
    expect(m.config).toEqual(JSON.parse(await readFile(join(MINI, "config.json"), "utf8")));
    expect(await checkAgainstSource(MINI, out, m)).toBe(m.tensors.length);
  });

  it("an mla-edge convert output (MLA tensors, int32 rope pairs) packs and matches its source", async () => {
    const mla = join(work, "tiny-mla");
    const io = { stdout: () => undefined, stderr: () => undefined };
    expect(await main(["convert", "--model", TINY, "--out", mla, "--d-kv", "16", "--strategy", "high", "--svd", "joint"], io)).toBe(0);
    const out = join(work, "tiny-mla-bundle");
    const { manifest: m } = await packBundle(mla, out, { weights: "int8", block: 128, norms: "f16" });
    expect(findBundleTensor(m, "model.layers.0.self_attn.k_r_proj.weight")).toMatchObject({ kind: "matmul_nbits", bits: 8 });
    expect(findBundleTensor(m, "model.layers.0.self_attn.kv_proj.up_k.weight")).toMatchObject({ kind: "matmul_nbits" });
    expect(findBundleTensor(m, "model.layers.0.input_layernorm.weight")).toMatchObject({ kind: "plain", dtype: "f16" });
    const pairs = findBundleTensor(m, "model.layers.0.self_attn.rope_pairs");
    expect(pairs).toMatchObject({ kind: "plain", dtype: "i32" });
    const arrays = await arraysFromShards(out, m);
    const ckpt = await openCheckpointDir(mla);
    const expectedPairs = await ckpt.source.readInt32("model.layers.0.self_attn.rope_pairs");
    await ckpt.source.close();
    const got = arrays.get("model.layers.0.self_attn.rope_pairs:data")!;
    expect([...new Int32Array(got.buffer, 0, expectedPairs.length)]).toEqual([...expectedPairs]);
    expect((await readdir(out)).sort()).toEqual(["manifest.json", "tokenizer.json", "tokenizer_config.json", "vision.onnx", "weights-00000.bin"]);
    expect(await checkAgainstSource(mla, out, m, ["visual.safetensors"])).toBe(m.tensors.length - 4); // all but the 4 int32 rope_pairs (checked above)
  });

  it("the CLI writes a bundle and reports it as JSON", async () => {
    let stdout = "";
    const io = { stdout: (s: string) => void (stdout += s), stderr: () => undefined };
    const out = join(work, "cli-bundle");
    expect(await main(["pack", "--model", TINY, "--out", out, "--weights", "int4", "--block", "64", "--json"], io)).toBe(0);
    const summary = JSON.parse(stdout) as { shards: number; quantization: { block: number } };
    expect(summary.quantization.block).toBe(64);
    expect((await readdir(out)).sort()).toEqual(["manifest.json", "tokenizer.json", "tokenizer_config.json", "vision.onnx", "weights-00000.bin"]);
  });

  it("the CLI reports a missing model folder and a bad flag as one-line errors (exit 1)", async () => {
    let stderr = "";
    const io = { stdout: () => undefined, stderr: (s: string) => void (stderr += s) };
    expect(await main(["pack", "--model", join(work, "nope"), "--out", join(work, "nope-out")], io)).toBe(1);
    expect(stderr).toMatch(/nope\/config\.json does not exist/);
    stderr = "";
    expect(await main(["pack", "--model", TINY, "--out", join(work, "nope-out"), "--block", "48"], io)).toBe(1);
    expect(stderr).toMatch(/--block must be one of 32, 64, 128/);
    expect((await readdir(work)).filter((f) => f.includes("nope"))).toEqual([]);
  });

  describe("typed errors leave nothing behind", () => {
    async function brokenModel(name: string, patch: (c: Record<string, unknown>) => void): Promise<string> {
      const dir = join(work, name);
      await cp(TINY, dir, { recursive: true, filter: (p) => !p.endsWith(".jsonl") });
      const c = JSON.parse(await readFile(join(TINY, "config.json"), "utf8")) as Record<string, unknown>;
      patch(c);
      await writeFile(join(dir, "config.json"), JSON.stringify(c));
      return dir;
    }
    const expectNoOutput = async (out: string) => {
      const left = (await readdir(work)).filter((f) => f.includes(out.split("/").pop()!));
      expect(left).toEqual([]);
    };

    it("missing tensor, wrong shape, unknown family, bad config", async () => {
      const cases: Array<[string, (c: Record<string, unknown>) => void, string, RegExp]> = [
        ["m-missing", (c) => void (c.num_hidden_layers = 5), "missing_tensor", /model\.layers\.4\./],
        ["m-shape", (c) => void (c.intermediate_size = 300), "shape_mismatch", /model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight has shape/],
        ["m-family", (c) => void (c.model_type = "gpt2"), "unknown_family", /gpt2/],
        ["m-config", (c) => void delete c.hidden_size, "bad_config", /hidden_size/],
      ];
      for (const [name, patch, code, msg] of cases) {
        const model = await brokenModel(name, patch);
        const out = join(work, `${name}-out`);
        const err = await packBundle(model, out).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(PackError);
        expect((err as PackError).code).toBe(code);
        expect((err as PackError).message).toMatch(msg);
        await expectNoOutput(out);
      }
    });

    it("disk full mid-shard: PackError disk_full naming the shard, no bundle and no temp folder", async () => {
      const out = join(work, "full-out");
      let written = 0;
      const err = await packBundle(TINY, out, {
        maxShardBytes: 64 * 1024,
        openShardFile: async () => ({
          async write(buf: Uint8Array, off?: number | null, len?: number | null) {
            written += len ?? buf.byteLength;
            if (written > 200_000) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
            return { bytesWritten: len ?? buf.byteLength, buffer: buf };
          },
          async close() {},
        }) as never,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PackError);
      expect((err as PackError).code).toBe("disk_full");
      expect((err as PackError).message).toMatch(/weights-0000\d\.bin/);
      await expectNoOutput(out);
    });

    it("an existing non-empty --out is refused untouched", async () => {
      const out = join(work, "exists-out");
      await cp(TINY, out, { recursive: true, filter: (p) => p.endsWith("tiny-qwen-vl") || basename(p) === "config.json" });
      const err = await packBundle(TINY, out).catch((e: unknown) => e);
      expect((err as PackError).code).toBe("out_exists");
      expect(await readdir(out)).toEqual(["config.json"]);
    });
  });
});

describe("bundle loader over HTTP", () => {
  let server: Server;
  let base: string;
  let bundle: string;
  let served = 0;
  let requests: string[] = [];
  beforeAll(async () => {
    bundle = join(work, "served");
    await packBundle(MINI, bundle, { maxShardBytes: 2 * 1024 * 1024 });
    server = createServer((req, res) => {
      const file = decodeURIComponent((req.url ?? "/").slice(1));
      requests.push(file);
      readFile(join(bundle, file)).then(
        (bytes) => {
          served += bytes.byteLength;
          res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.byteLength });
          // several writes so the client sees a real stream of chunks
          for (let o = 0; o < bytes.byteLength; o += 300_000) res.write(bytes.subarray(o, o + 300_000));
          res.end();
        },
        () => {
          res.writeHead(404).end();
        },
      );
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const addr = server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}/`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  /** A sink recording every window into per-shard buffers (what a GPU engine would receive). */
  function recordingSink(m: BundleManifest) {
    const shards = m.shards.map((s) => new Uint8Array(s.size));
    const windows: Array<[number, number, number]> = [];
    return {
      shards,
      windows,
      sink: {
        write(shard: number, offset: number, bytes: Uint8Array) {
          windows.push([shard, offset, bytes.byteLength]);
          shards[shard].set(bytes, offset);
        },
      },
    };
  }

  it("cold load fetches and verifies everything with progress; a reload from the folder cache fetches zero bytes", async () => {
    const cache = new FolderBundleCache(join(work, "cache-a"));
    const manifest = parseBundleManifest(JSON.parse(await readFile(join(bundle, "manifest.json"), "utf8")));
    const total = manifest.shards.reduce((s, x) => s + x.size, 0) + manifest.files.reduce((s, x) => s + x.size, 0);
    const rec = recordingSink(manifest);
    const events: Array<[number, number]> = [];
    served = 0;
    const first = await loadBundle(base, { cache, sink: rec.sink, onProgress: (d, t) => events.push([d, t]), windowBytes: 256 * 1024 });
    expect(first.stats.bytesFetched).toBe(total);
    expect(first.stats.bytesFromCache).toBe(0);
    expect(served).toBe(total + first.stats.manifestBytes);
    expect(events.length).toBeGreaterThan(manifest.shards.length + 2);
    for (let i = 1; i < events.length; i++) expect(events[i][0]).toBeGreaterThanOrEqual(events[i - 1][0]);
    expect(events.at(-1)).toEqual([total, total]);
    for (const [, off, len] of rec.windows) {
      expect(off % 256).toBe(0);
      expect(len % 256).toBe(0);
    }
    for (const [i, s] of manifest.shards.entries()) expect(same(rec.shards[i], await readFile(join(bundle, s.file)))).toBe(true);
    expect(new TextDecoder().decode(first.files.get("chat_template.json"))).toBe(await readFile(join(MINI, "chat_template.json"), "utf8"));

    served = 0;
    requests = [];
    const rec2 = recordingSink(manifest);
    const events2: Array<[number, number]> = [];
    const second = await loadBundle(base, { cache, sink: rec2.sink, onProgress: (d, t) => events2.push([d, t]) });
    expect(second.stats.bytesFetched).toBe(0);
    expect(second.stats.bytesFromCache).toBe(total);
    expect(requests).toEqual(["manifest.json"]);
    expect(served).toBe(second.stats.manifestBytes);
    expect(events2.at(-1)).toEqual([total, total]);
    for (const [i, b] of rec.shards.entries()) expect(same(rec2.shards[i], b)).toBe(true);
  });

  it("a corrupted cached shard is detected by its hash, dropped and fetched again", async () => {
    const cacheDir = join(work, "cache-b");
    const cache = new FolderBundleCache(cacheDir);
    const first = await loadBundle(base, { cache });
    const victim = first.manifest.shards[1];
    const path = join(cacheDir, `sha256-${victim.sha256}.bin`);
    const bytes = new Uint8Array(await readFile(path));
    bytes[1000] ^= 0x10;
    await writeFile(path, bytes);
    requests = [];
    const rec = recordingSink(first.manifest);
    const again = await loadBundle(base, { cache, sink: rec.sink });
    expect(again.stats.corruptCached).toEqual([victim.file]);
    expect(again.stats.fetched).toEqual([victim.file]);
    expect(again.stats.bytesFetched).toBe(victim.size);
    expect(requests).toEqual(["manifest.json", victim.file]);
    expect(same(rec.shards[1], await readFile(join(bundle, victim.file)))).toBe(true);
    expect(same(await readFile(path), rec.shards[1])).toBe(true); // the cache holds the good bytes again
  });

  it("a corrupted shard on the server is refused with hash_mismatch and not cached", async () => {
    const broken = join(work, "served");
    const manifest = parseBundleManifest(JSON.parse(await readFile(join(broken, "manifest.json"), "utf8")));
    const victim = manifest.shards[0];
    const path = join(broken, victim.file);
    const good = new Uint8Array(await readFile(path));
    const bad = good.slice();
    bad[12345] ^= 0x01;
    await writeFile(path, bad);
    try {
      const cacheDir = join(work, "cache-c");
      const err = await loadBundle(base, { cache: new FolderBundleCache(cacheDir) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BundleError);
      expect((err as BundleError).code).toBe("hash_mismatch");
      expect((err as BundleError).message).toContain(victim.file);
      const cached = await readdir(cacheDir).catch(() => [] as string[]);
      expect(cached).not.toContain(`sha256-${victim.sha256}.bin`);
    } finally {
      await writeFile(path, good);
    }
  });

  it("a bundle on disk loads through folderFetch with the same verification (no server)", async () => {
    const manifest = parseBundleManifest(JSON.parse(await readFile(join(bundle, "manifest.json"), "utf8")));
    const rec = recordingSink(manifest);
    const r = await loadBundle(FOLDER_BASE, { fetch: folderFetch(bundle), cache: null, sink: rec.sink });
    expect(r.stats.fetched.length).toBe(manifest.shards.length + manifest.files.length);
    for (const [i, s] of manifest.shards.entries()) expect(same(rec.shards[i], await readFile(join(bundle, s.file)))).toBe(true);
    // a path leaving the folder is refused even when the file exists there
    await writeFile(join(work, "manifest.json"), await readFile(join(bundle, "manifest.json")));
    try {
      expect((await folderFetch(bundle)(`${FOLDER_BASE}../manifest.json`)).status).toBe(404);
      expect((await folderFetch(bundle)(`${FOLDER_BASE}manifest.json`)).status).toBe(200);
    } finally {
      await rm(join(work, "manifest.json"));
    }
  });

  it("downloads `concurrency` files at once (3 by default), one at a time with concurrency 1", async () => {
    const peak = async (concurrency: number | undefined) => {
      let inFlight = 0;
      let max = 0;
      const counting = async (url: string, init?: { signal?: AbortSignal }) => {
        inFlight++;
        max = Math.max(max, inFlight);
        await new Promise((r) => setTimeout(r, 20));
        try {
          const res = await fetch(url, init);
          return new Response(await res.arrayBuffer(), { status: res.status });
        } finally {
          inFlight--;
        }
      };
      const r = await loadBundle(base, { fetch: counting, cache: null, concurrency });
      expect(r.stats.fetched.length).toBeGreaterThan(4);
      return max;
    };
    expect(await peak(undefined)).toBe(3);
    expect(await peak(1)).toBe(1);
  });

  it("a missing bundle is fetch_failed (HTTP 404) and an aborted load is aborted, both typed", async () => {
    const missing = await loadBundle(`${base}no-such-bundle/`, { cache: null }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(BundleError);
    expect(missing).toMatchObject({ code: "fetch_failed", message: expect.stringContaining("HTTP 404") });
    const ac = new AbortController();
    ac.abort();
    const aborted = await loadBundle(base, { cache: null, signal: ac.signal }).catch((e: unknown) => e);
    expect(aborted).toMatchObject({ code: "aborted" });
    const ac2 = new AbortController();
    const midway = await loadBundle(base, { cache: null, signal: ac2.signal, onProgress: (d) => d > 1_000_000 && ac2.abort() }).catch((e: unknown) => e);
    expect(midway).toBeInstanceOf(BundleError);
    expect(midway).toMatchObject({ code: "aborted" });
  });

  it("gpuWeightSink fills one buffer per tensor array through queue.writeBuffer (4-byte aligned writes)", async () => {
    const store = new Map<object, Uint8Array>();
    const device: GpuWeightDevice = {
      createBuffer: (d) => {
        expect(d.size % 4).toBe(0);
        const b = { label: d.label };
        store.set(b, new Uint8Array(d.size));
        return b as unknown as GPUBuffer;
      },
      queue: {
        writeBuffer(buf, offset, data) {
          expect(offset % 4).toBe(0);
          expect(data.byteLength % 4).toBe(0);
          store.get(buf as unknown as object)!.set(data, offset);
        },
      },
    };
    const manifest = parseBundleManifest(JSON.parse(await readFile(join(bundle, "manifest.json"), "utf8")));
    const gpu = gpuWeightSink(device, manifest);
    await loadBundle(base, { cache: null, sink: gpu.sink, files: [] });
    const expected = await arraysFromShards(bundle, manifest);
    for (const [key, bytes] of expected) expect(same(store.get(gpu.buffers.get(key)! as unknown as object), bytes), key).toBe(true);
    expect(gpu.bytes).toBe([...expected.values()].reduce((s, b) => s + b.byteLength, 0));
  });
});

describe("tensorRouterSink", () => {
  it("rounds a slice with an odd byte length up to 4 bytes with the shard's padding, and places split pieces", async () => {
    const hex = "0".repeat(64);
    const manifest = parseBundleManifest({
      format: "mla-edge-bundle",
      version: 1,
      config: {},
      tokenizer: {},
      preprocessorConfig: null,
      quantization: { weights: "f16", block: 32, zeroPoints: false, vision: "f16", norms: "f16" },
      aliases: {},
      tensors: [
        { name: "odd", kind: "plain", shape: [3], dtype: "f16", data: { rows: 3, rowBytes: 2, pieces: [{ shard: 0, offset: 0, byteLength: 6, rowStart: 0, rowEnd: 3 }] } },
        {
          name: "split",
          kind: "plain",
          shape: [3, 2],
          dtype: "f32",
          data: {
            rows: 3,
            rowBytes: 8,
            pieces: [
              { shard: 0, offset: 256, byteLength: 16, rowStart: 0, rowEnd: 2 },
              { shard: 1, offset: 0, byteLength: 8, rowStart: 2, rowEnd: 3 },
            ],
          },
        },
      ],
      shards: [
        { file: "weights-00000.bin", size: 512, sha256: hex },
        { file: "weights-00001.bin", size: 256, sha256: hex },
      ],
      files: [],
    });
    const slices: Array<[string, number, number[]]> = [];
    const sink = tensorRouterSink(manifest, (s) => void slices.push([s.tensor.name, s.arrayOffset, [...s.bytes]]));
    const shard0 = new Uint8Array(512);
    shard0.set([1, 2, 3, 4, 5, 6], 0);
    shard0.set(Array.from({ length: 16 }, (_, i) => 10 + i), 256);
    await sink.write(0, 0, shard0.subarray(0, 256));
    await sink.write(0, 256, shard0.subarray(256));
    const shard1 = new Uint8Array(256);
    shard1.set([30, 31, 32, 33, 34, 35, 36, 37]);
    await sink.write(1, 0, shard1);
    expect(slices).toEqual([
      ["odd", 0, [1, 2, 3, 4, 5, 6, 0, 0]],
      ["split", 0, Array.from({ length: 16 }, (_, i) => 10 + i)],
      ["split", 16, [30, 31, 32, 33, 34, 35, 36, 37]],
    ]);
  });
});
