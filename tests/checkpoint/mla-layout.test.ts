// Our MLA checkpoint layout round-trips exactly (tensors and logits), uses the released tensor names, and the released
// layout (no rope_pairs, side rank tensor) loads to the same model.

import { mkdtemp, rm, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CheckpointError, copyTensors, planSafetensors, serializeSafetensors, type TensorToWrite } from "../../checkpoint/index.ts";
import { openCheckpointDir, openSafetensorsFile, writeSafetensorsFile } from "../../checkpoint/io.node.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { buildMlaModel } from "../../runtime/mla/build.ts";
import { loadMlaModel, mlaCheckpointConfig, mlaCheckpointTensors, shellTensors, streamingMlaLayerTensors } from "../../runtime/mla/checkpoint.ts";
import { QWEN2_5_VL_NAMING } from "../../checkpoint/families/index.ts";
import { ranksFromKeptPairs } from "../../runtime/mla/kept-pairs.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";
import { imagePrefixTokens, loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { FIXTURE_DIR, readEvalCases, relativeError } from "../runtime/helpers.ts";
import { randomLowRank, randomPairs } from "../runtime/mla-helpers.ts";

let fx: TinyFixture;
let mla: MlaModelWeights;
let dir = "";
let ids: number[];
let embeds: Float32Array;

beforeAll(async () => {
  fx = await loadTinyFixture(FIXTURE_DIR);
  mla = buildMlaModel(fx.model, randomPairs(fx.config, 21, 4), randomLowRank(fx.config, 300, 8, 2), {
    partialRopeVersion: "2-norm",
    svdInitMethod: "md-svd",
  });
  dir = await mkdtemp(join(tmpdir(), "mla-ckpt-"));
  const [c] = await readEvalCases(1);
  ids = [...imagePrefixTokens(fx.tokenizer, 16), ...fx.tokenizer.encode("shape at b3 none"), 5, ...fx.tokenizer.encode("where red circle")];
  embeds = runVisionTower(fx.vision, patchesFromU8(base64ToBytes(c.patches_u8)));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function logits(model: MlaModelWeights): Float32Array {
  const { session } = createMlaSession(model, "absorbed", { defaultImageGrid: fx.imageGrid });
  return session.append(ids, { imageEmbeds: embeds, logits: "all" });
}

async function writeCheckpoint(out: string, tensors: TensorToWrite[], config: Record<string, unknown>): Promise<void> {
  const visual = await openSafetensorsFile(join(FIXTURE_DIR, "visual.safetensors"));
  await writeFile(join(out, "config.json"), JSON.stringify(config, null, 2));
  await writeSafetensorsFile(join(out, "model.safetensors"), [...tensors, ...copyTensors(visual, visual.names())]);
  await visual.close();
}

function expectSameModel(a: MlaModelWeights, b: MlaModelWeights): void {
  expect([b.ropeDims, b.dKv, b.latentSpaces]).toEqual([a.ropeDims, a.dKv, a.latentSpaces]);
  a.attention.forEach((la, l) => {
    const lb = b.attention[l];
    expect(lb.keptPairs.map((p) => Array.from(p))).toEqual(la.keptPairs.map((p) => Array.from(p)));
    for (const k of ["qProj", "qBias", "kRProj", "kRBias", "oProj"] as const) expect(lb[k]).toEqual(la[k]);
    la.spaces.forEach((s, i) => expect(lb.spaces[i]).toEqual(s));
  });
  expect(b.shell.embedTokens).toEqual(a.shell.embedTokens);
  expect(b.shell.layers[3].down).toEqual(a.shell.layers[3].down);
}

describe("mla-edge checkpoint layout", () => {
  it("round-trips every tensor and the logits exactly, with the kept pairs inside the checkpoint", async () => {
    const out = await mkdtemp(join(dir, "ours-"));
    await writeCheckpoint(out, mlaCheckpointTensors(mla), mlaCheckpointConfig(mla, fx.rawConfig));
    const cfg = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    expect(cfg.mha2mla).toMatchObject({ partial_rope_version: "2-norm", rope_dim_for_mla: 8, low_rank: 8, svd_init_method: "md-svd" });
    expect(cfg.mla_edge).toEqual({ layout_version: 1, rope_pairs: "in_checkpoint", latent_spaces: 2 });
    expect(cfg.hidden_size).toBe(128);

    const ck = await openCheckpointDir(out);
    try {
      expect(ck.source.info("model.layers.2.self_attn.rope_pairs")).toMatchObject({ dtype: "I32", shape: [2, 4] });
      const back = await loadMlaModel(ck.source, ck.rawConfig);
      expectSameModel(mla, back);
      expect(back.conversion).toEqual({ partialRopeVersion: "2-norm", svdInitMethod: "md-svd" });
      expect(relativeError(logits(back), logits(mla))).toBe(0);
      expect(ck.source.has("visual.attn.in_proj_weight")).toBe(true);
    } finally {
      await ck.source.close();
    }
  });

  it("uses the released tensor names and shapes (docs/method.md §10.4)", () => {
    const names = new Map(mlaCheckpointTensors(mla).filter((t) => t.name.startsWith("model.layers.0.self_attn.")).map((t) => [t.name.slice(25), t.shape]));
    expect(Object.fromEntries(names)).toEqual({
      "q_proj.weight": [128, 128],
      "q_proj.bias": [128],
      "k_r_proj.weight": [16, 128],
      "k_r_proj.bias": [16],
      "o_proj.weight": [128, 128],
      "kv_proj_text.down_kv.weight": [16, 128],
      "kv_proj_text.up_k.weight": [48, 16],
      "kv_proj_text.up_k.bias": [48],
      "kv_proj_text.up_v.weight": [64, 16],
      "kv_proj_text.up_v.bias": [64],
      "kv_proj_img.down_kv.weight": [16, 128],
      "kv_proj_img.up_k.weight": [48, 16],
      "kv_proj_img.up_k.bias": [48],
      "kv_proj_img.up_v.weight": [64, 16],
      "kv_proj_img.up_v.bias": [64],
      rope_pairs: [2, 4],
    });
    // the permuted q_proj: its first rows are head 0's kept dims of the original q_proj, ascending
    const p0 = mla.attention[0].keptPairs[0];
    const row0 = p0[0];
    expect(mla.attention[0].qProj.subarray(0, 128)).toEqual(fx.model.attention[0].qProj.subarray(row0 * 128, (row0 + 1) * 128));
    const lastKept = p0[p0.length - 1] + 16; // second-half dim of head 0's last kept pair
    expect(mla.attention[0].qProj.subarray(7 * 128, 8 * 128)).toEqual(fx.model.attention[0].qProj.subarray(lastKept * 128, (lastKept + 1) * 128));
  });

  it("writes bf16 weights that load back close to f32 (rope pairs stay int32)", async () => {
    const out = await mkdtemp(join(dir, "bf16-"));
    const tensors = mlaCheckpointTensors(mla, { dtype: "BF16" });
    expect(planSafetensors(tensors).totalBytes).toBeLessThan(planSafetensors(mlaCheckpointTensors(mla)).totalBytes * 0.51);
    await writeCheckpoint(out, tensors, mlaCheckpointConfig(mla, fx.rawConfig));
    const ck = await openCheckpointDir(out);
    try {
      const back = await loadMlaModel(ck.source, ck.rawConfig);
      expect(back.attention[1].keptPairs).toEqual(mla.attention[1].keptPairs);
      const err = relativeError(logits(back), logits(mla));
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(3e-2);
    } finally {
      await ck.source.close();
    }
  });
});

describe("streaming conversion output", () => {
  it("builds each layer once, on demand, and writes the same bytes as the eager layout", async () => {
    const builds: number[] = [];
    const tensors = shellTensors(mla.shell, fx.config, QWEN2_5_VL_NAMING);
    for (let l = 0; l < fx.config.numLayers; l++) {
      tensors.push(
        ...streamingMlaLayerTensors(fx.config, QWEN2_5_VL_NAMING, l, { ropeDims: 8, dKv: 8, latentSpaces: 2, biases: true }, async () => {
          builds.push(l);
          return mla.attention[l];
        }),
      );
    }
    expect(builds).toEqual([]);
    const streamed = await serializeSafetensors(tensors);
    expect(builds).toEqual([0, 1, 2, 3]);
    const eager = await serializeSafetensors(mlaCheckpointTensors(mla));
    expect(Buffer.from(streamed).equals(Buffer.from(eager))).toBe(true);
  });

  it("rejects a built layer that does not match its declared shape", async () => {
    const tensors = streamingMlaLayerTensors(fx.config, QWEN2_5_VL_NAMING, 0, { ropeDims: 8, dKv: 4, latentSpaces: 2, biases: true }, async () => mla.attention[0]);
    await expect(serializeSafetensors(tensors)).rejects.toSatisfy((e: unknown) => e instanceof CheckpointError && e.code === "shape_mismatch");
  });
});

describe("released MHA2MLA-VLM layout", () => {
  it("needs the side rank tensor, and with it loads the same model", async () => {
    const out = await mkdtemp(join(dir, "released-"));
    const config = mlaCheckpointConfig(mla, fx.rawConfig);
    delete config.mla_edge;
    (config.mha2mla as Record<string, unknown>).qk_tensor_path = "mkl/tiny/tiny-ranks.pth";
    await writeCheckpoint(out, mlaCheckpointTensors(mla, { ropePairs: false }), config);
    const ck = await openCheckpointDir(out);
    try {
      expect(ck.source.has("model.layers.0.self_attn.rope_pairs")).toBe(false);
      await expect(loadMlaModel(ck.source, ck.rawConfig)).rejects.toSatisfy(
        (e: unknown) => e instanceof CheckpointError && e.code === "bad_layout",
      );
      const keptPairs = mla.attention.map((a) => a.keptPairs.map((p) => Array.from(p)));
      const ranks = ranksFromKeptPairs(keptPairs, 32); // the side file's [L, n_kv, d_h] uint8 ranks
      const back = await loadMlaModel(ck.source, ck.rawConfig, { ranks });
      expectSameModel(mla, back);
      expect(relativeError(logits(back), logits(mla))).toBe(0);
      // a rank tensor with an unrelated ranking gives a different model
      const other = await loadMlaModel(ck.source, ck.rawConfig, { ranks: ranksFromKeptPairs(keptPairs.map((l) => l.map(() => [0, 1, 2, 3])), 32) });
      expect(relativeError(logits(other), logits(mla))).toBeGreaterThan(1e-3);
    } finally {
      await ck.source.close();
    }
  });
});
