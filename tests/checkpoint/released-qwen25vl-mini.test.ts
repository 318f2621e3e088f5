// The qwen25vl-mini decoder (real Qwen2.5-VL tensor names, bf16 shards, biases, tied embeddings) converted with the kept
// pairs of the rank file PyTorch wrote for it (fixtures/released-ranks/qwen25vl-mini-ranks.pth), saved in the
// released layout with that very file at `mha2mla.qk_tensor_path`: it loads through the released family module to the
// same decoder and the same logits as mla-edge's own layout of the same weights. Decoder only: the qwen25vl-mini
// family (real tokenizer, processor, vision tower) is another issue's, so this does not go through `mla-edge eval`.

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveReleasedRanks } from "../../checkpoint/families/mha2mla_released.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { openCheckpointDir, writeSafetensorsFile } from "../../checkpoint/io.node.ts";
import { dirFileReader } from "../../convert/eval/vlm-dir.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { buildMlaModel } from "../../runtime/mla/build.ts";
import { loadMlaModel, mlaCheckpointConfig, mlaCheckpointTensors } from "../../runtime/mla/checkpoint.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";
import { loadGqaModel } from "../../runtime/weights.ts";
import { relativeError } from "../runtime/helpers.ts";
import { randomLowRank } from "../runtime/mla-helpers.ts";

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
const RANKS = fileURLToPath(new URL("../../fixtures/released-ranks/", import.meta.url));
const QK_PATH = "mkl/qwen2_5_vl/qwen2_5_vl-ranks.pth"; // the path the released configs carry
const ROPE_DIMS = 8; // of head_dim 16: 4 of 8 pairs kept

let tmp = "";
let converted: MlaModelWeights;
let expectedPairs: number[][][];
const ids = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 9707, 151645]; // any ids < vocab

function logits(model: MlaModelWeights): Float32Array {
  const { session } = createMlaSession(model, "absorbed");
  return session.append(ids, { logits: "all" });
}

async function writeLayout(out: string, ropePairs: boolean, rankFile: string | null): Promise<void> {
  await mkdir(out, { recursive: true });
  const raw = JSON.parse(await readFile(join(MINI, "config.json"), "utf8")) as Record<string, unknown>;
  const config = mlaCheckpointConfig(converted, raw) as Record<string, Record<string, unknown>>;
  if (!ropePairs) {
    delete config.mla_edge;
    Object.assign(config.mha2mla, { qk_tensor_path: QK_PATH, peft_train: "v2", stage1_path: "/author/local/stage1" });
  }
  await writeFile(join(out, "config.json"), JSON.stringify(config));
  await writeSafetensorsFile(join(out, "model.safetensors"), mlaCheckpointTensors(converted, { ropePairs, dtype: "BF16" }));
  if (rankFile !== null) {
    await mkdir(dirname(join(out, QK_PATH)), { recursive: true });
    await copyFile(rankFile, join(out, QK_PATH));
  }
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), "mla-mini-released-"));
  // kept pairs straight from expected.json's values (independent of the .pth reader): rank < r/2
  const exp = JSON.parse(await readFile(join(RANKS, "expected.json"), "utf8")) as Record<string, { values: number[][][] }>;
  expectedPairs = exp["qwen25vl-mini-ranks.pth"].values.map((layer) =>
    layer.map((row) => row.slice(0, 8).flatMap((rank, pair) => (rank < ROPE_DIMS / 2 ? [pair] : []))),
  );
  const ck = await openCheckpointDir(MINI);
  try {
    const gqa = await loadGqaModel(ck.source, ck.config);
    converted = buildMlaModel(gqa, expectedPairs, randomLowRank(ck.config, 77, 4, 2), { partialRopeVersion: "mkl", svdInitMethod: "joint" });
  } finally {
    await ck.source.close();
  }
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("qwen25vl-mini in the released layout with the PyTorch-written rank file", () => {
  it("loads to the same decoder and bit-identical logits as our layout", async () => {
    const ours = join(tmp, "ours");
    const released = join(tmp, "released");
    await writeLayout(ours, true, null);
    await writeLayout(released, false, join(RANKS, "qwen25vl-mini-ranks.pth"));

    const a = await openCheckpointDir(ours);
    const b = await openCheckpointDir(released);
    try {
      expect(b.source.names().some((n) => n.endsWith("rope_pairs"))).toBe(false);
      const rr = await resolveReleasedRanks(b.rawConfig, dirFileReader(released), released);
      expect(rr.keptPairs).toEqual(expectedPairs);
      expect(rr.path).toBe(`${released}/${QK_PATH}`);
      const mOurs = await loadMlaModel(a.source, a.rawConfig);
      const mRel = await loadMlaModel(b.source, b.rawConfig, { ranks: rr.ranks });
      expect(mRel.attention.map((x) => x.keptPairs.map((p) => Array.from(p)))).toEqual(expectedPairs);
      expect(mRel.latentSpaces).toBe(2);
      const la = logits(mOurs);
      expect(la.length).toBe(ids.length * 151936);
      expect(relativeError(logits(mRel), la)).toBe(0);
    } finally {
      await a.source.close();
      await b.source.close();
    }
  });

  it("the 7B-shaped rank file in its place is rank_file_mismatch naming the file", async () => {
    const wrong = join(tmp, "wrong");
    await writeLayout(wrong, false, join(RANKS, "qwen2_5_vl-7b-shape-ranks.pth"));
    const raw = JSON.parse(await readFile(join(wrong, "config.json"), "utf8")) as unknown;
    await expect(resolveReleasedRanks(raw, dirFileReader(wrong), wrong)).rejects.toSatisfy(
      (e: unknown) => e instanceof CheckpointError && e.code === "rank_file_mismatch" && e.message.includes(`${QK_PATH}: rank tensor has shape [28, 4, 128]; this model needs [2, 2, 16]`),
    );
  });
});
