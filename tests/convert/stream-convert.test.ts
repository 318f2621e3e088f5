// Streaming conversion (issue 19) on fixtures/qwen25vl-mini (bf16 shards): the layer-by-layer conversion writes the same
// tensors, byte for byte, as the in-memory pipeline (loadGqaModel + convertModel + mlaCheckpointTensors) for a
// data-free and a calibrated setting; the chat-calibration path (real tokenizer, template, image processor, vision
// tower) runs MD-SVD + mkl at d_kv = d_h/4 end to end; failures leave no output folder and no temporary folder behind.

import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { openCheckpointDir, writeShardedCheckpoint } from "../../checkpoint/io.node.ts";
import { copyTensors } from "../../checkpoint/copy-tensors.ts";
import type { TensorSource } from "../../checkpoint/tensor-source.ts";
import { readChatCalibration } from "../../convert/calibration/chat-calib.ts";
import type { CalibrationSample } from "../../convert/calibration/layer-forward.ts";
import { loadCalibrationSamples, visionPassThrough } from "../../convert/cli/convert.ts";
import { readCalibrationSet } from "../../convert/calibration/calib-set.ts";
import { loadVisionSide } from "../../convert/eval/vlm-dir.ts";
import { convertModel, type ConvertOptions } from "../../convert/pipeline/convert-model.ts";
import { ConversionError } from "../../convert/pipeline/errors.ts";
import { streamConvert } from "../../convert/pipeline/stream-convert.ts";
import { mlaCheckpointConfig, mlaCheckpointTensors } from "../../runtime/mla/checkpoint.ts";
import { loadGqaModel } from "../../runtime/weights.ts";
import { runCli } from "../cli/run-cli.ts";

const TINY = fileURLToPath(new URL("../../fixtures/tiny-qwen-vl/", import.meta.url));
const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
let tmp: string;
let calibFile: string;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-stream-"));
  // two conversations with the fixture's images (paths relative to the jsonl), one text-only
  await mkdir(join(tmp, "calib", "images"), { recursive: true });
  for (const f of ["gradient_252x56.png", "noisy_300x150.png"]) await cp(join(MINI, "images", f), join(tmp, "calib", "images", f));
  const img = (f: string) => ({ type: "image_url", image_url: { url: `images/${f}` } });
  const lines = [
    { messages: [{ role: "user", content: [img("noisy_300x150.png"), { type: "text", text: "Describe the image in one sentence." }] }, { role: "assistant", content: "A noisy picture." }] },
    [{ role: "user", content: [img("gradient_252x56.png"), { type: "text", text: "What does this strip show?" }] }, { role: "assistant", content: "A gradient." }],
    { messages: [{ role: "user", content: "Name three colors." }, { role: "assistant", content: "Red, green and blue." }] },
  ];
  calibFile = join(tmp, "calib", "chats.jsonl");
  await writeFile(calibFile, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
}, 60_000);

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** name → [dtype, shape, bytes] of every tensor of a folder. */
async function tensorBytes(dir: string): Promise<Map<string, [string, string, Buffer]>> {
  const ck = await openCheckpointDir(dir);
  const out = new Map<string, [string, string, Buffer]>();
  try {
    for (const n of ck.source.names().sort()) {
      const i = ck.source.info(n);
      out.set(n, [i.dtype, i.shape.join("x"), Buffer.from(await ck.source.readBytes(n))]);
    }
  } finally {
    await ck.source.close();
  }
  return out;
}

async function inMemory(out: string, opts: ConvertOptions, samples: readonly CalibrationSample[] | null): Promise<void> {
  const ck = await openCheckpointDir(MINI);
  try {
    const orig = await loadGqaModel(ck.source, ck.config);
    const calibration = samples === null ? null : { sequences: samples.map((s) => ({ inputIds: s.inputIds, patches: new Float32Array(0), imageEmbeds: s.imageEmbeds, imageGrids: s.imageGrids })) };
    const r = convertModel(orig, opts, calibration);
    await writeShardedCheckpoint(out, [...mlaCheckpointTensors(r.model, { dtype: "BF16" }), ...visionPassThrough(ck.source)]);
    await writeFile(join(out, "config.json"), JSON.stringify(mlaCheckpointConfig(r.model, ck.rawConfig)));
  } finally {
    await ck.source.close();
  }
}

async function samples(): Promise<CalibrationSample[]> {
  const ck = await openCheckpointDir(MINI);
  try {
    return await readChatCalibration(calibFile, MINI, ck.source, ck.rawConfig);
  } finally {
    await ck.source.close();
  }
}

function expectSameTensors(a: Map<string, [string, string, Buffer]>, b: Map<string, [string, string, Buffer]>): void {
  expect([...a.keys()]).toEqual([...b.keys()]);
  for (const [n, [dt, shape, bytes]] of a) {
    const [dt2, shape2, bytes2] = b.get(n)!;
    expect(`${n} ${dt} ${shape}`).toBe(`${n} ${dt2} ${shape2}`);
    if (!bytes.equals(bytes2)) throw new Error(`tensor ${n} differs`);
  }
}

describe("streaming conversion (qwen25vl-mini)", () => {
  it("data-free (high + joint SVD): streamed output equals the in-memory conversion byte for byte, visual.* included", async () => {
    const opts: ConvertOptions = { strategy: "high", ropeDims: 4, svd: "joint", dKv: 4 };
    const streamed = join(tmp, "df-stream");
    const r = await streamConvert({ modelDir: MINI, outDir: streamed, options: opts, maxShardBytes: 4_000_000 });
    await inMemory(join(tmp, "df-mem"), opts, null);
    const a = await tensorBytes(streamed);
    expectSameTensors(a, await tensorBytes(join(tmp, "df-mem")));
    expect([...a.keys()].filter((n) => n.startsWith("visual.")).length).toBeGreaterThan(40);
    expect(a.get("model.layers.1.self_attn.kv_proj.down_kv.weight")?.[0] ?? a.get([...a.keys()].find((n) => n.includes("layers.1.self_attn") && n.includes("down"))!)![0]).toBe("BF16");
    // sharded: several files + an index naming every tensor; config carries the conversion; side files copied
    const files = (await readdir(streamed)).sort();
    expect(files).toContain("model.safetensors.index.json");
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
    for (const f of ["tokenizer.json", "tokenizer_config.json", "chat_template.json", "preprocessor_config.json", "generation_config.json"]) expect(files).toContain(f);
    const index = JSON.parse(await readFile(join(streamed, "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> };
    expect(Object.keys(index.weight_map).sort()).toEqual([...a.keys()]);
    const cfg = JSON.parse(await readFile(join(streamed, "config.json"), "utf8")) as Record<string, Record<string, unknown>> & { torch_dtype: string };
    expect(cfg.mha2mla).toMatchObject({ partial_rope_version: "high", rope_dim_for_mla: 4, low_rank: 4, svd_init_method: "joint" });
    expect(cfg.mla_edge).toMatchObject({ rope_pairs: "in_checkpoint", latent_spaces: 1, conversion: { strategy: "high", svd: "joint", dtype: "bf16" } });
    expect(cfg.torch_dtype).toBe("bfloat16");
    expect(r.bytesWritten).toBeGreaterThan(19_000_000); // the bf16 embedding alone is 151936 × 64 × 2
    expect(r.phases.calibrate).toBe(0);
    // no temporary folder left next to the output
    expect((await readdir(tmp)).filter((f) => f.includes("partial"))).toEqual([]);
  }, 120_000);

  it("calibrated (mkl + MD-SVD, d_kv = d_h/4) from chat data: streamed output equals the in-memory conversion byte for byte", async () => {
    const s = await samples();
    expect(s).toHaveLength(3);
    expect(s[0].imageGrids).toEqual([{ rows: 5, cols: 11 }]);
    expect(s[0].imageEmbeds!.length).toBe(55 * 64);
    const opts: ConvertOptions = { strategy: "mkl", ropeDims: 4, svd: "md", dKv: 4 };
    const r = await streamConvert({ modelDir: MINI, outDir: join(tmp, "cal-stream"), options: opts, calibration: s, forward: "reference" });
    expect(r.latentSpaces).toBe(2);
    expect(r.calibrationTokens.image).toBe(55 + 18 + 4); // pads + vision_start/end (image-routed ids)
    await inMemory(join(tmp, "cal-mem"), opts, s);
    expectSameTensors(await tensorBytes(join(tmp, "cal-stream")), await tensorBytes(join(tmp, "cal-mem")));
    // the default wasm-f32 forward (MLP matrices streamed into wasm memory) ranks with the same scores to f32 rounding
    const fast = await streamConvert({ modelDir: MINI, outDir: join(tmp, "cal-fast"), options: opts, calibration: s });
    const a = r.selection.scores!.values;
    const b = fast.selection.scores!.values;
    const scale = a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0)).toBeLessThan(1e-4 * scale);
    expect(fast.selection.keptPairs).toEqual(r.selection.keptPairs);
  }, 120_000);

  it("CLI: --calib chat jsonl with MD-SVD + mkl at d_kv 4 runs end to end and generate loads the result", async () => {
    const out = join(tmp, "cli-mkl-md");
    const c = await runCli(["convert", "--model", MINI, "--out", out, "--d-kv", "4", "--rope-dims", "4", "--strategy", "mkl", "--svd", "md", "--calib", calibFile, "--json"]);
    expect(c.stderr).toMatch(/calibrate +\[#{20}\] layer 2\/2 · sequence 3\/3/);
    expect(c.code).toBe(0);
    const summary = JSON.parse(c.stdout) as { latentSpaces: number; calibrationTokens: { image: number; text: number }; keptPairs: number[][][] };
    expect(summary.latentSpaces).toBe(2);
    expect(summary.calibrationTokens.image).toBe(77);
    expect(summary.keptPairs).toHaveLength(2);
    const g = await runCli(["generate", "--model", out, "--prompt", "Name three colors.", "--max-tokens", "3", "--temperature", "0", "--json"]);
    expect(g.code).toBe(0);
    expect((JSON.parse(g.stdout) as { kind: string; output_ids: number[] }).output_ids).toHaveLength(3);
    // pack takes the sharded output as its input
    const p = await runCli(["pack", "--model", out, "--out", join(tmp, "cli-mkl-md-bundle"), "--weights", "int4", "--block", "32"]);
    expect(p.code).toBe(0);
    expect(await readdir(join(tmp, "cli-mkl-md-bundle"))).toContain("manifest.json");
    // --calib-limit keeps whole conversations up to the token budget (the first always)
    const l = await runCli(["convert", "--model", MINI, "--out", join(tmp, "cli-lim"), "--d-kv", "4", "--strategy", "mkl", "--svd", "joint", "--calib", calibFile, "--calib-limit", "10", "--json"]);
    expect(l.code).toBe(0);
    expect((JSON.parse(l.stdout) as { calibrationTokens: { image: number } }).calibrationTokens.image).toBe(57);
  }, 120_000);

  it("tiny-qwen-vl's own calib.jsonl (toy tower): streamed mkl + MD-SVD equals convertModel byte for byte in f32, so docs/fidelity.md's inputs are unchanged", async () => {
    const ck = await openCheckpointDir(TINY);
    let samplesTiny: CalibrationSample[];
    try {
      samplesTiny = await loadCalibrationSamples(join(TINY, "calib.jsonl"), TINY, ck.config, ck.rawConfig, { sequences: 16, tokens: Infinity }, () => {});
      const orig = await loadGqaModel(ck.source, ck.config);
      const side = await loadVisionSide(TINY, ck.rawConfig);
      const sequences = await readCalibrationSet(join(TINY, "calib.jsonl"), 16);
      const opts: ConvertOptions = { strategy: "mkl", ropeDims: 8, svd: "md", dKv: 8 };
      const mem = convertModel(orig, opts, { sequences, vision: side.vision, imageGrid: side.imageGrid });
      const memDir = join(tmp, "tiny-mem");
      await writeShardedCheckpoint(memDir, mlaCheckpointTensors(mem.model, { dtype: "F32" }));
      await writeFile(join(memDir, "config.json"), JSON.stringify(mlaCheckpointConfig(mem.model, ck.rawConfig)));
      const r = await streamConvert({ modelDir: TINY, outDir: join(tmp, "tiny-stream"), options: opts, dtype: "f32", calibration: samplesTiny, forward: "reference" });
      expect(r.selection.keptPairs).toEqual(mem.selection.keptPairs);
      expect(Buffer.from(r.selection.scores!.values.buffer).equals(Buffer.from(mem.selection.scores!.values.buffer))).toBe(true); // the attention-KL scores, bit for bit
      expect(r.selection.ranks).toEqual(mem.selection.ranks);
      expect(r.calibrationTokens).toEqual(mem.calibrationTokens);
      expectSameTensors(await tensorBytes(join(tmp, "tiny-stream")), await tensorBytes(memDir));
    } finally {
      await ck.source.close();
    }
  }, 120_000);

  describe("failures leave nothing behind", () => {
    const opts: ConvertOptions = { strategy: "high", ropeDims: 4, svd: "joint", dKv: 4 };
    const leftovers = async () => (await readdir(tmp)).filter((f) => f.includes("partial"));

    it("an injected write failure (disk full) is a typed error naming the tensor and file; no output folder", async () => {
      const out = join(tmp, "full");
      let writes = 0;
      const err = await streamConvert({
        modelDir: MINI,
        outDir: out,
        options: opts,
        openSink: async () => ({
          async write() {
            // header, embed_tokens, norm, then the first tensor of layer 0 hits a full disk
            if (++writes === 4) throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
          },
          async close() {},
        }),
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CheckpointError);
      expect((err as CheckpointError).code).toBe("io");
      expect((err as Error).message).toMatch(/^writing tensor model\.layers\.0\.\S+ to .*model\.safetensors failed: ENOSPC/);
      await expect(readdir(out)).rejects.toThrow(/ENOENT/);
      expect(await leftovers()).toEqual([]);
    }, 60_000);

    async function brokenCopy(name: string, edit: (src: TensorSource, names: string[]) => string[], config?: (c: Record<string, unknown>) => Record<string, unknown>): Promise<string> {
      const dir = join(tmp, name);
      const ck = await openCheckpointDir(MINI);
      try {
        await writeShardedCheckpoint(dir, copyTensors(ck.source, edit(ck.source, ck.source.names())), { maxShardBytes: 10_000_000 });
      } finally {
        await ck.source.close();
      }
      const raw = JSON.parse(await readFile(join(MINI, "config.json"), "utf8")) as Record<string, unknown>;
      await writeFile(join(dir, "config.json"), JSON.stringify(config ? config(raw) : raw));
      return dir;
    }

    it("a missing tensor, a wrong shape and an unknown family are typed errors before anything is written", async () => {
      const missing = await brokenCopy("src-missing", (_, names) => names.filter((n) => n !== "model.layers.1.mlp.up_proj.weight"));
      const e1 = await streamConvert({ modelDir: missing, outDir: join(tmp, "o1"), options: opts }).catch((e: unknown) => e);
      expect(e1).toBeInstanceOf(CheckpointError);
      expect((e1 as CheckpointError).code).toBe("missing_tensor");
      expect((e1 as Error).message).toMatch(/no tensor named model\.layers\.1\.mlp\.up_proj\.weight/);
      const shape = await brokenCopy("src-shape", (_, n) => n, (c) => ({ ...c, intermediate_size: 128 }));
      const e2 = await streamConvert({ modelDir: shape, outDir: join(tmp, "o2"), options: opts }).catch((e: unknown) => e);
      expect((e2 as CheckpointError).code).toBe("shape_mismatch");
      expect((e2 as Error).message).toMatch(/model\.layers\.0\.mlp\.gate_proj\.weight has shape \[160, 64\], expected \[128, 64\]/);
      const family = await brokenCopy("src-family", (_, n) => n, (c) => ({ ...c, model_type: "gpt2" }));
      const e3 = await streamConvert({ modelDir: family, outDir: join(tmp, "o3"), options: opts }).catch((e: unknown) => e);
      expect(e3).toBeInstanceOf(ConversionError);
      expect((e3 as Error).message).toMatch(/unsupported architecture model_type "gpt2"/);
      for (const o of ["o1", "o2", "o3"]) await expect(readdir(join(tmp, o))).rejects.toThrow(/ENOENT/);
      expect(await leftovers()).toEqual([]);
    }, 60_000);

    it("refuses a non-empty output folder and leaves it as it was", async () => {
      const out = join(tmp, "busy");
      await mkdir(out);
      await writeFile(join(out, "keep.txt"), "mine");
      const e = await streamConvert({ modelDir: MINI, outDir: out, options: opts }).catch((x: unknown) => x);
      expect((e as Error).message).toMatch(/exists and is not empty/);
      expect(await readdir(out)).toEqual(["keep.txt"]);
    });
  });
});
