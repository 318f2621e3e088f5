// Issue 19 item 5 for `mla-edge generate` and `mla-edge pack`: a released MHA2MLA checkpoint directory as published
// (config `mha2mla` with `qk_tensor_path`, no rope_pairs tensors, the .pth rank file PyTorch wrote beside it: here
// fixtures/released-ranks/qwen25vl-mini-ranks.pth for qwen25vl-mini's decoder, converted at the kept pairs of that file,
// plus the model's vision tower and side files) gives the same greedy ids and logits through `generate` as mla-edge's
// own layout of the same weights; `--rank-file` serves a folder downloaded without it. `pack` of it writes a bundle
// carrying the kept pairs as rope_pairs tensors (no rank file needed) that loads (hash-verified) to the same decoder
// and the same logits as the bundle of our layout. The SDK's loadChatModelDir reads such a folder too.

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dequantizeMatMulNBits } from "../../checkpoint/bundle/matmul-nbits.ts";
import type { BundleManifest, BundleTensorEntry } from "../../checkpoint/bundle/manifest.ts";
import { copyTensors } from "../../checkpoint/copy-tensors.ts";
import { openCheckpointDir, writeSafetensorsFile } from "../../checkpoint/io.node.ts";
import type { TensorInfo } from "../../checkpoint/safetensors-header.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import type { GenerateJson } from "../../convert/cli/generate.ts";
import { PackError } from "../../convert/pack/errors.ts";
import { packBundle } from "../../convert/pack/pack-bundle.ts";
import { f16ToF32 } from "../../format/codec/fp16.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { loadBundle, tensorArrays, tensorRouterSink } from "../../runtime/loader/bundle-loader.ts";
import { FOLDER_BASE, folderFetch } from "../../runtime/loader/folder-fetch.node.ts";
import { buildMlaModel } from "../../runtime/mla/build.ts";
import { loadMlaModel, mlaCheckpointConfig, mlaCheckpointTensors } from "../../runtime/mla/checkpoint.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";
import { loadGqaModel } from "../../runtime/weights.ts";
import { randomLowRank } from "../runtime/mla-helpers.ts";
import { loadReference, refCase } from "../runtime/qwen25vl-fixture.ts";
import { runCli } from "./run-cli.ts";
import { ChatSession } from "../../client/chat/chat-session.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import { loadChatModelDir } from "../../runtime/chat-model.node.ts";
import { nodeImageLoader } from "../../runtime/inputs/processor.node.ts";
import type { InputMessage } from "../../runtime/inputs/processor.ts";
import { MemoryStore } from "../client/memory-store.ts";

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
const RANKS = fileURLToPath(new URL("../../fixtures/released-ranks/", import.meta.url));
const QK_PATH = "mkl/qwen2_5_vl/qwen2_5_vl-ranks.pth"; // the path the released configs carry
const ROPE_DIMS = 8; // of head_dim 16: 4 of 8 pairs kept
const SIDE = ["tokenizer.json", "tokenizer_config.json", "chat_template.json", "preprocessor_config.json", "generation_config.json"];

let tmp = "";
let ours = "";
let released = "";
let bare = "";
let messages = "";
let expectedPairs: number[][][];

/** A checkpoint folder of `converted` + the mini's vision tower and side files, in our layout or the released one. */
async function writeLayout(converted: MlaModelWeights, out: string, layout: "ours" | "released", rankFile: string | null): Promise<void> {
  await mkdir(out, { recursive: true });
  const raw = JSON.parse(await readFile(join(MINI, "config.json"), "utf8")) as Record<string, unknown>;
  const config = mlaCheckpointConfig(converted, raw) as Record<string, Record<string, unknown>>;
  if (layout === "released") {
    delete config.mla_edge;
    Object.assign(config.mha2mla, { qk_tensor_path: QK_PATH, peft_train: "v2", stage1_path: "/author/local/stage1" });
  }
  await writeFile(join(out, "config.json"), JSON.stringify(config));
  const ck = await openCheckpointDir(MINI);
  try {
    const visual = ck.source.names().filter((n) => n.startsWith("visual."));
    await writeSafetensorsFile(join(out, "model.safetensors"), [...mlaCheckpointTensors(converted, { ropePairs: layout === "ours", dtype: "BF16" }), ...copyTensors(ck.source, visual)]);
  } finally {
    await ck.source.close();
  }
  for (const f of SIDE) await copyFile(join(MINI, f), join(out, f));
  if (rankFile !== null) {
    await mkdir(dirname(join(out, QK_PATH)), { recursive: true });
    await copyFile(rankFile, join(out, QK_PATH));
  }
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "mla-released-generate-"));
  // kept pairs straight from expected.json's values (independent of the .pth reader): rank < r/2
  const exp = JSON.parse(await readFile(join(RANKS, "expected.json"), "utf8")) as Record<string, { values: number[][][] }>;
  expectedPairs = exp["qwen25vl-mini-ranks.pth"].values.map((layer) => layer.map((row) => row.slice(0, 8).flatMap((rank, pair) => (rank < ROPE_DIMS / 2 ? [pair] : []))));
  const ck = await openCheckpointDir(MINI);
  let converted: MlaModelWeights;
  try {
    converted = buildMlaModel(await loadGqaModel(ck.source, ck.config), expectedPairs, randomLowRank(ck.config, 77, 4, 2), { partialRopeVersion: "mkl", svdInitMethod: "joint" });
  } finally {
    await ck.source.close();
  }
  ours = join(tmp, "ours");
  released = join(tmp, "released");
  bare = join(tmp, "bare");
  await writeLayout(converted, ours, "ours", null);
  await writeLayout(converted, released, "released", join(RANKS, "qwen25vl-mini-ranks.pth"));
  await writeLayout(converted, bare, "released", null);
  // the one_image case: an image that needs a resize, so the vision tower, the processor and M-RoPE all take part
  const c = refCase(loadReference(), "one_image");
  await mkdir(join(tmp, "images"), { recursive: true });
  for (const img of c.images) await copyFile(join(MINI, img.url), join(tmp, img.url));
  messages = join(tmp, "messages.json");
  await writeFile(messages, JSON.stringify((c as unknown as { messages: unknown[] }).messages));
}, 120_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function generate(dir: string, extra: string[] = []): Promise<GenerateJson> {
  const r = await runCli(["generate", "--model", dir, "--messages", messages, "--max-tokens", "8", "--temperature", "0", "--json", ...extra]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as GenerateJson;
}

describe("mla-edge generate on a released MHA2MLA directory", () => {
  it("gives the greedy ids and logits of mla-edge's own layout of the same weights", async () => {
    const a = await generate(ours);
    const b = await generate(released);
    expect(b.kind).toBe("mla");
    expect(b.input_ids).toEqual(a.input_ids);
    expect(b.output_ids).toEqual(a.output_ids);
    expect(b.top_logits).toEqual(a.top_logits); // same bf16 weights, same kept pairs: bit-identical
    // the rank file is really used: the original model's logits are elsewhere
    const orig = await generate(MINI);
    expect(Math.abs(orig.top_logits[0][1] - b.top_logits[0][1])).toBeGreaterThan(1e-3);
  }, 120_000);

  it("--rank-file serves a folder without its rank file; without it the error names qk_tensor_path", async () => {
    const b = await generate(bare, ["--rank-file", join(RANKS, "qwen25vl-mini-ranks.pth")]);
    const a = await generate(ours);
    expect(b.output_ids).toEqual(a.output_ids);
    expect(b.top_logits).toEqual(a.top_logits);
    const r = await runCli(["generate", "--model", bare, "--messages", messages, "--max-tokens", "2", "--json"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/qwen2_5_vl-ranks\.pth/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    const o = await runCli(["generate", "--model", MINI, "--messages", messages, "--rank-file", join(RANKS, "qwen25vl-mini-ranks.pth")]);
    expect(o.code).toBe(1);
    expect(o.stderr).toMatch(/--rank-file applies to an MLA checkpoint/);
  }, 120_000);
});

describe("the SDK on a released MHA2MLA directory", () => {
  it("loadChatModelDir reads the rank file beside it; a chat turn answers like our layout's", async () => {
    const codec = { bits: 4, group: 32, axis: "token", rope: "int8" } as const;
    const msgs = JSON.parse(await readFile(messages, "utf8")) as InputMessage[];
    const answer = async (dir: string) => {
      const model = await loadChatModelDir(dir, { codec: loadNodeCodec() });
      const chat = ChatSession.fresh(model, new MemoryStore(model.spec, codec, 128, model.ref), { codec, chunkTokens: 128 });
      return chat.complete({ messages: msgs, loadImage: nodeImageLoader(tmp), maxTokens: 8, topLogits: 20 });
    };
    const a = await answer(ours);
    const b = await answer(released);
    expect(b.tokenIds).toEqual(a.tokenIds);
    expect(b.topLogits).toEqual(a.topLogits);
    await expect(loadChatModelDir(bare, { codec: loadNodeCodec() })).rejects.toThrow(/qwen2_5_vl-ranks\.pth/);
  }, 120_000);
});

/** A loaded bundle as a TensorSource: f32/f16/i32 plain tensors and dequantized MatMulNBits weights; aliases resolved. */
function bundleSource(m: BundleManifest, arrays: Map<string, Uint8Array>): TensorSource {
  const byName = new Map<string, BundleTensorEntry>(m.tensors.map((t) => [t.name, t]));
  const entry = (name: string): BundleTensorEntry => {
    const t = byName.get(m.aliases[name] ?? name);
    if (t === undefined) throw new Error(`no tensor ${name}`);
    return t;
  };
  const arr = (t: BundleTensorEntry, a: string) => arrays.get(`${t.name}:${a}`)!;
  return {
    names: () => [...byName.keys(), ...Object.keys(m.aliases)],
    has: (name) => byName.has(m.aliases[name] ?? name),
    info: (name): TensorInfo => {
      const t = entry(name);
      return { name, dtype: t.kind === "plain" && t.dtype === "i32" ? "I32" : "F32", shape: t.shape, begin: 0, end: 0 };
    },
    readFloat32: async (name) => {
      const t = entry(name);
      if (t.kind === "matmul_nbits") {
        const s = arr(t, "scales");
        const zp = t.zeroPoints ? arr(t, "zeroPoints").subarray(0, t.zeroPoints.rows * t.zeroPoints.rowBytes) : null;
        return Float32Array.from(dequantizeMatMulNBits({ n: t.shape[0], k: t.shape[1], bits: t.bits, block: t.block, b: arr(t, "b").subarray(0, t.b.rows * t.b.rowBytes), scales: new Uint16Array(s.buffer, s.byteOffset, t.scales.rows * t.kBlocks), zeroPoints: zp }));
      }
      const n = t.shape.reduce((a, b) => a * b, 1);
      const d = arr(t, "data");
      if (t.dtype === "f32") return new Float32Array(d.buffer.slice(d.byteOffset, d.byteOffset + n * 4));
      if (t.dtype === "f16") return Float32Array.from(new Uint16Array(d.buffer, d.byteOffset, n), f16ToF32);
      throw new Error(`${name} is not a float tensor`);
    },
    readInt32: async (name) => {
      const t = entry(name);
      const d = arr(t, "data");
      return new Int32Array(d.buffer.slice(d.byteOffset, d.byteOffset + t.shape.reduce((a, b) => a * b, 1) * 4));
    },
    readBytes: async () => {
      throw new Error("not needed");
    },
    close: async () => undefined,
  };
}

/** Loads bundle folder `dir` (hash-verified, as a browser would) and its MLA decoder. */
async function loadBundleModel(dir: string): Promise<{ manifest: BundleManifest; arrays: Map<string, Uint8Array>; model: MlaModelWeights }> {
  const arrays = new Map<string, Uint8Array>();
  const planned = JSON.parse(await readFile(join(dir, "manifest.json"), "utf8")) as BundleManifest;
  const sink = tensorRouterSink(planned, (s) => {
    const key = `${s.tensor.name}:${s.array}`;
    if (!arrays.has(key)) {
      const a = tensorArrays(s.tensor).find(([n]) => n === s.array)![1];
      arrays.set(key, new Uint8Array(Math.ceil((a.rows * a.rowBytes) / 4) * 4));
    }
    arrays.get(key)!.set(s.bytes, s.arrayOffset);
  });
  const loaded = await loadBundle(FOLDER_BASE, { fetch: folderFetch(dir), cache: null, sink });
  const manifest = loaded.manifest;
  const model = await loadMlaModel(bundleSource(manifest, arrays), manifest.config);
  return { manifest, arrays, model };
}

describe("mla-edge pack of a released MHA2MLA directory", () => {
  it("writes rope_pairs from the rank file; the bundle loads to the same decoder and logits as our layout's bundle", async () => {
    const bo = join(tmp, "bundle-ours");
    const br = join(tmp, "bundle-released");
    const flags = ["--weights", "int8", "--block", "32", "--json"];
    expect((await runCli(["pack", "--model", ours, "--out", bo, ...flags])).code).toBe(0);
    const r = await runCli(["pack", "--model", released, "--out", br, ...flags]);
    expect(r.stderr.split("\n").filter((l) => !l.startsWith("pack: ")).join("")).toBe("");
    expect(r.code).toBe(0);
    const a = await loadBundleModel(bo);
    const b = await loadBundleModel(br);
    expect(b.manifest.tensors.map((t) => t.name).sort()).toEqual(a.manifest.tensors.map((t) => t.name).sort());
    for (const [key, bytes] of a.arrays) expect(Buffer.compare(Buffer.from(bytes), Buffer.from(b.arrays.get(key)!)), key).toBe(0);
    expect(b.model.attention.map((l) => l.keptPairs.map((p) => Array.from(p)))).toEqual(expectedPairs);
    const ids = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 9707, 151645];
    const la = createMlaSession(a.model, "absorbed").session.append(ids, { logits: "all" });
    const lb = createMlaSession(b.model, "absorbed").session.append(ids, { logits: "all" });
    expect(Buffer.compare(Buffer.from(la.buffer), Buffer.from(lb.buffer))).toBe(0);
  }, 120_000);

  it("--rank-file serves a folder without its rank file; a missing rank file is missing_file and leaves nothing", async () => {
    const out = join(tmp, "bundle-bare");
    const bundle = await packBundle(bare, out, { weights: "f16", rankFile: join(RANKS, "qwen25vl-mini-ranks.pth") });
    expect(bundle.manifest.tensors.filter((t) => t.name.endsWith("rope_pairs")).map((t) => t.shape)).toEqual([[2, 4], [2, 4]]);
    const none = join(tmp, "bundle-none");
    await expect(packBundle(bare, none, { weights: "f16" })).rejects.toSatisfy((e: unknown) => e instanceof PackError && e.code === "missing_file" && /qwen2_5_vl-ranks\.pth/.test(e.message));
    await expect(readFile(join(none, "manifest.json"))).rejects.toThrow();
  }, 120_000);
});
