// The Qwen2.5-VL family module: the released 3B/7B configs parse to the expected geometry, the mini fixture's config
// and tensor names follow the family's layout, and a Qwen2.5-VL-7B-shaped sharded checkpoint (sparse shards with real
// headers, ~16.6 GB apparent size) opens lazily: headers only, a tensor read on demand, memory far below the files.

import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  imageTokenCount,
  parseQwen25VLConfig,
  qwen25DecoderNaming,
  qwen25VisionPrefix,
  QWEN2_5_VL_3B_CONFIG,
  QWEN2_5_VL_7B_CONFIG,
} from "../../checkpoint/families/qwen2_5_vl.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import { planSafetensors, type TensorToWrite } from "../../checkpoint/safetensors-writer.ts";
import { layerTensorNames } from "../../checkpoint/families/index.ts";
import { qwen25VisionWeightShapes } from "../../runtime/vision/qwen2_5_vl-vision.ts";

describe("Qwen2.5-VL configs as released", () => {
  it("3B: vocab 151,936, tied embeddings, mrope [16, 24, 24], vision 32 blocks out 2048", () => {
    const c = parseQwen25VLConfig(QWEN2_5_VL_3B_CONFIG);
    expect(c.text).toMatchObject({ vocabSize: 151936, tieWordEmbeddings: true, hiddenSize: 2048, numLayers: 36, numHeads: 16, numKvHeads: 2, headDim: 128, ropeTheta: 1e6 });
    expect(c.text.mropeSection).toEqual([16, 24, 24]);
    expect(c.text.imageRoutedTokenIds).toEqual([151655, 151652, 151653]);
    expect(c.vision).toMatchObject({ depth: 32, hiddenSize: 1280, numHeads: 16, headDim: 80, outHiddenSize: 2048, windowSize: 112 });
    expect(c.vision.fullattBlockIndexes).toEqual([7, 15, 23, 31]);
    // image tokens = grid_t·grid_h·grid_w / merge² (the fixture's 308×140 image: grid [1, 10, 22] → 55)
    expect(imageTokenCount({ t: 1, h: 10, w: 22 }, c.vision.spatialMergeSize)).toBe(55);
  });

  it("7B: vocab 152,064 (padded), untied lm_head, 28 layers of 28/4 heads, vision out 3584", () => {
    const c = parseQwen25VLConfig(QWEN2_5_VL_7B_CONFIG);
    expect(c.text).toMatchObject({ vocabSize: 152064, tieWordEmbeddings: false, hiddenSize: 3584, numLayers: 28, numHeads: 28, numKvHeads: 4, headDim: 128 });
    expect(c.vision.outHiddenSize).toBe(3584);
  });

  it("the mini fixture's config parses; other families and broken vision configs are typed errors", () => {
    const raw = JSON.parse(readFileSync("fixtures/qwen25vl-mini/config.json", "utf8"));
    const c = parseQwen25VLConfig(raw);
    expect(c.text).toMatchObject({ vocabSize: 151936, tieWordEmbeddings: true, headDim: 16 });
    expect(c.vision).toMatchObject({ depth: 4, hiddenSize: 32, headDim: 16, windowSize: 112 });
    expect(() => parseQwen25VLConfig({ ...raw, model_type: "llava_next" })).toThrow(CheckpointError);
    expect(() => parseQwen25VLConfig({ ...raw, vision_config: { ...raw.vision_config, out_hidden_size: 32 } })).toThrow(/out_hidden_size/);
    expect(() => parseQwen25VLConfig({ ...raw, vision_config: { ...raw.vision_config, fullatt_block_indexes: [9] } })).toThrow(/fullatt_block_indexes/);
    const tiny = JSON.parse(readFileSync("fixtures/tiny-qwen-vl/config.json", "utf8"));
    expect(() => parseQwen25VLConfig(tiny)).toThrow(/toy tower/);
  });
});

/** Every tensor of the released 7B with its shape, as bf16. */
function sevenBTensors(): TensorToWrite[] {
  const c = parseQwen25VLConfig(QWEN2_5_VL_7B_CONFIG);
  const t = c.text;
  const d = t.hiddenSize;
  const kv = t.numKvHeads * t.headDim;
  const naming = qwen25DecoderNaming([]);
  const shapes = new Map<string, number[]>([
    ["model.embed_tokens.weight", [t.vocabSize, d]],
    ["lm_head.weight", [t.vocabSize, d]],
    ["model.norm.weight", [d]],
  ]);
  for (let l = 0; l < t.numLayers; l++) {
    const n = layerTensorNames(naming, l);
    shapes.set(n.qWeight, [d, d]).set(n.qBias, [d]).set(n.kWeight, [kv, d]).set(n.kBias, [kv]).set(n.vWeight, [kv, d]).set(n.vBias, [kv]);
    shapes.set(n.oWeight, [d, d]).set(n.gate, [t.intermediateSize, d]).set(n.up, [t.intermediateSize, d]).set(n.down, [d, t.intermediateSize]);
    shapes.set(n.inputNorm, [d]).set(n.postNorm, [d]);
  }
  for (const [name, shape] of qwen25VisionWeightShapes(c.vision)) shapes.set(name, shape);
  return [...shapes].map(([name, shape]) => ({ name, dtype: "BF16" as const, shape, data: new Uint8Array(0) }));
}

describe("a Qwen2.5-VL-7B-shaped sharded checkpoint opens lazily", () => {
  let dir: string;
  let apparent = 0;
  let normOffset = 0;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "qwen7b-sparse-"));
    const all = sevenBTensors();
    const shards = 5;
    const per = Math.ceil(all.length / shards);
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < shards; s++) {
      const file = `model-0000${s + 1}-of-0000${shards}.safetensors`;
      const part = all.slice(s * per, (s + 1) * per);
      const plan = planSafetensors(part, { format: "pt" });
      const fd = openSync(join(dir, file), "w");
      writeSync(fd, plan.header, 0, plan.header.length, 0);
      // model.norm.weight gets real bf16 values (1.0, 2.0, …) so a read can be checked; everything else is a hole.
      const norm = plan.tensors.find((p) => p.tensor.name === "model.norm.weight");
      if (norm !== undefined) {
        const vals = new Uint8Array(norm.end - norm.begin);
        const dv = new DataView(vals.buffer);
        for (let i = 0; i < vals.length / 2; i++) dv.setUint16(2 * i, new Uint32Array(new Float32Array([(i % 7) + 1]).buffer)[0] >>> 16, true);
        writeSync(fd, vals, 0, vals.length, norm.begin);
        normOffset = norm.begin;
      }
      ftruncateSync(fd, plan.totalBytes);
      closeSync(fd);
      apparent += statSync(join(dir, file)).size;
      for (const p of part) weightMap[p.name] = file;
    }
    writeFileSync(join(dir, "config.json"), JSON.stringify(QWEN2_5_VL_7B_CONFIG));
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: apparent }, weight_map: weightMap }));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("headers only: every released tensor name with its shape; one tensor read on demand; memory far below the files", async () => {
    expect(apparent).toBeGreaterThan(15e9);
    expect(normOffset).toBeGreaterThan(0);
    global.gc?.();
    const before = process.memoryUsage().rss;
    const ck = await openCheckpointDir(dir);
    try {
      const c = parseQwen25VLConfig(ck.rawConfig);
      expect(ck.files).toHaveLength(5);
      const names = ck.source.names();
      expect(qwen25DecoderNaming(names).embedTokens).toBe("model.embed_tokens.weight");
      expect(qwen25VisionPrefix(names)).toBe("visual.");
      expect(ck.source.info("model.embed_tokens.weight").shape).toEqual([152064, 3584]);
      expect(ck.source.info("visual.patch_embed.proj.weight").shape).toEqual([1280, 3, 2, 14, 14]);
      expect(ck.source.info("visual.merger.mlp.0.weight").shape).toEqual([5120, 5120]);
      for (const [name, shape] of qwen25VisionWeightShapes(c.vision)) expect(ck.source.info(name).shape).toEqual(shape);
      const norm = await ck.source.readFloat32("model.norm.weight", [3584]);
      expect(Array.from(norm.subarray(0, 8))).toEqual([1, 2, 3, 4, 5, 6, 7, 1]);
      const q = await ck.source.readFloat32("model.layers.27.self_attn.k_proj.bias", [512]);
      expect(q.every((x) => x === 0)).toBe(true);
      const grown = process.memoryUsage().rss - before;
      expect(grown).toBeLessThan(200e6);
      expect(grown * 50).toBeLessThan(apparent);
    } finally {
      await ck.source.close();
    }
  });
});
