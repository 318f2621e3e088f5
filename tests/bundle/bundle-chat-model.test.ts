// A chat model from a packed bundle (runtime/loader/bundle-chat-model.ts), what the demo loads: the demo's converted
// tiny-qwen-vl packed with f16 weights gives every tensor as the original rounded to f16 (exactly), and with int4
// weights every element within one quantization step of the original; the bundle's vision.onnx runs the tower; the
// f16 bundle answers the eval cases as the original checkpoint does; a second load comes from the cache.

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-web";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import { bufferByteSource } from "../../checkpoint/byte-source.ts";
import { SafetensorsFile } from "../../checkpoint/safetensors-file.ts";
import { f16ToF32, f32ToF16Bits } from "../../format/codec/fp16.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import { bundleTensors, loadBundleChatModel } from "../../runtime/loader/bundle-chat-model.ts";
import { FolderBundleCache } from "../../runtime/loader/folder-cache.node.ts";
import { FOLDER_BASE, folderFetch } from "../../runtime/loader/folder-fetch.node.ts";
import { parseBundleManifest } from "../../checkpoint/bundle/manifest.ts";
import { OrtVisionEncoder } from "../../runtime/vision/vision-encoder.ts";
import { ChatSession } from "../../client/chat/chat-session.ts";
import { MemoryStore } from "../client/memory-store.ts";
import { caseImage, DEMO_MODEL_DIR, demoChatModel, readEvalCases } from "../client/fixture-model.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import type { CodecParams } from "../../format/codec/types.ts";

let work: string;
const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "mla-bundle-chat-"));
  await packBundle(DEMO_MODEL_DIR, join(work, "f16"), { weights: "f16", maxShardBytes: 256 * 1024 });
  await packBundle(DEMO_MODEL_DIR, join(work, "int4"), { weights: "int4", block: 32, maxShardBytes: 256 * 1024 });
  ort.env.wasm.numThreads = 1;
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function tensorsOf(dir: string) {
  const manifest = parseBundleManifest(JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")));
  const shards = await Promise.all(manifest.shards.map(async (s) => new Uint8Array(await readFile(join(dir, s.file)))));
  return { manifest, tensors: bundleTensors(manifest, shards) };
}

const vision = (onnx: Uint8Array) => OrtVisionEncoder.create(ort, onnx, { cells: 16, patchDim: 192, hidden: 128 }, { executionProviders: ["wasm"] });

async function answers(model: ChatModel, n: number): Promise<string[]> {
  const out: string[] = [];
  for (const c of await readEvalCases(n)) {
    const s = ChatSession.fresh(model, new MemoryStore(model.spec, CODEC, 16, model.ref), { codec: CODEC, chunkTokens: 16 });
    for (let t = 0; t < c.turns.length; t++) {
      const content = t === 0 ? [{ type: "image" as const, image: caseImage(c) }, { type: "text" as const, text: c.turns[t].question }] : c.turns[t].question;
      out.push((await s.chat({ messages: [{ role: "user", content }], maxTokens: 4 })).message.content);
    }
  }
  return out;
}

describe("bundle → chat model", () => {
  it("should rebuild every tensor: f16 = the original rounded to f16, int4 within one step", async () => {
    const original = await SafetensorsFile.open(bufferByteSource(new Uint8Array(await readFile(join(DEMO_MODEL_DIR, "model.safetensors")))));
    for (const kind of ["f16", "int4"] as const) {
      const { manifest, tensors } = await tensorsOf(join(work, kind));
      expect(tensors.map((t) => t.name).sort()).toEqual(original.names().filter((n) => !n.startsWith("visual.")).sort());
      for (const t of tensors) {
        const data = t.data as Float32Array | Int32Array;
        if (t.dtype === "I32") {
          expect(Array.from(data), t.name).toEqual(Array.from(await original.readInt32(t.name)));
          continue;
        }
        const want = await original.readFloat32(t.name);
        const entry = manifest.tensors.find((x) => x.name === t.name)!;
        if (entry.kind === "plain" && entry.dtype === "f32") {
          expect(Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength)), t.name).toBe(true);
        } else if (entry.kind === "plain") {
          expect([kind, entry.dtype]).toEqual(["f16", "f16"]);
          let bad = 0;
          for (let i = 0; i < want.length; i++) if (data[i] !== f16ToF32(f32ToF16Bits(want[i], "nearest-even"))) bad++;
          expect(bad, t.name).toBe(0);
        } else {
          expect(kind).toBe("int4");
          // symmetric int4: |w' − w| ≤ |scale| of the element's block, scale = max|w| / 8 of that block (rounded up to f16)
          const [n, k] = t.shape;
          for (let row = 0; row < n; row++) {
            for (let j = 0; j < k; j += 32) {
              let m = 0;
              for (let x = j; x < Math.min(k, j + 32); x++) m = Math.max(m, Math.abs(want[row * k + x]));
              const step = f16ToF32(f32ToF16Bits(m / 8, "up")) * (1 + 2 ** -10);
              let worst = 0;
              for (let x = j; x < Math.min(k, j + 32); x++) worst = Math.max(worst, Math.abs(data[row * k + x] - want[row * k + x]));
              expect(worst, `${t.name}[${row}, block ${j / 32}]`).toBeLessThanOrEqual(step);
            }
          }
        }
      }
      expect(manifest.tensors.filter((e) => e.kind === "matmul_nbits").length > 0).toBe(kind === "int4");
    }
  });

  it("should answer like the original checkpoint (f16 bundle), and load a second time from the cache", async () => {
    const cache = new FolderBundleCache(join(work, "cache"));
    const progress: number[] = [];
    const first = await loadBundleChatModel(FOLDER_BASE, { fetch: folderFetch(join(work, "f16")), cache, vision, codec: loadNodeCodec(), onProgress: (d) => progress.push(d) });
    expect(first.bundle.stats.bytesFetched).toBeGreaterThan(0);
    expect(progress[progress.length - 1]).toBe(first.bundle.stats.bytesFetched);
    expect(first.model.ref.conversion).toMatch(/\+bundle:f16$/);
    const want = await answers(await demoChatModel(), 4);
    expect(await answers(first.model, 4)).toEqual(want);
    const again = await loadBundleChatModel(FOLDER_BASE, { fetch: folderFetch(join(work, "f16")), cache, vision, codec: loadNodeCodec() });
    expect(again.bundle.stats.bytesFetched).toBe(0);
    expect(again.bundle.stats.fetched).toEqual([]);
    const int4 = await loadBundleChatModel(FOLDER_BASE, { fetch: folderFetch(join(work, "int4")), cache: null, vision, codec: loadNodeCodec() });
    const got = await answers(int4.model, 4);
    const agree = got.filter((a, i) => a === want[i]).length;
    console.log(`int4 bundle: ${agree}/${want.length} answers equal the f32 checkpoint's`);
    expect(agree / want.length).toBeGreaterThanOrEqual(0.75);
  });
});
