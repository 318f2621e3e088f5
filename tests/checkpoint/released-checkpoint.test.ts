// A released MHA2MLA-VLM checkpoint as published (config `mha2mla` with `qk_tensor_path`, no `rope_pairs`, the
// `.pth` rank file beside it) written from the tiny fixture's conversion: `mla-edge eval` and the SDK loader read the
// rank file themselves and give exactly the logits of the converter's own layout of the same weights; a rank file of
// another model, a hostile pickle or a missing file stop with typed errors naming the file.

import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keptPairsFromRankTensor, rankFileCandidates } from "../../checkpoint/families/mha2mla_released.ts";
import { PthError } from "../../checkpoint/pth.ts";
import { loadChatModel } from "../../runtime/chat-model.ts";
import { RuntimeError } from "../../runtime/errors.ts";
import { TypeScriptVisionEncoder } from "../../runtime/vision/vision-encoder.ts";
import { copyTensors } from "../../checkpoint/index.ts";
import { CheckpointError } from "../../checkpoint/errors.ts";
import { openSafetensorsFile, writeSafetensorsFile } from "../../checkpoint/io.node.ts";
import { loadVlmDir, type LoadedVlm } from "../../convert/eval/vlm-dir.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import type { MlaModelWeights } from "../../runtime/mla/weights.ts";
import { imagePrefixTokens, loadTinyFixture, type TinyFixture } from "../../runtime/tiny-fixture.node.ts";
import { base64ToBytes, patchesFromU8, runVisionTower } from "../../runtime/vision/toy-tower.ts";
import { runCli } from "../cli/run-cli.ts";
import { FIXTURE_DIR, readEvalCases, relativeError } from "../runtime/helpers.ts";
import { uint8TensorPth } from "./pth-writer.ts";

const RANKS_DIR = fileURLToPath(new URL("../../fixtures/released-ranks/", import.meta.url));
const QK_PATH = "mkl/tiny_qwen_vl/tiny_qwen_vl-ranks.pth";

let fx: TinyFixture;
let tmp = "";
let ours = ""; // the converter's own layout (rope_pairs inside)
let released = ""; // the same weights in the released layout + rank file
let oursVlm: LoadedVlm;
let ids: number[];
let embeds: Float32Array;

/** Release-style ranks: kept pairs get 0 … r/2−1 and the rest r/2 … in a seeded shuffled order (not ascending). */
function releasedRanks(kept: number[][][], headDim: number, seed: number): Uint8Array {
  const half = headDim / 2;
  let s = seed;
  const rand = (n: number): number => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) % n;
  const shuffle = (xs: number[]): number[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = rand(i + 1);
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  };
  const out = new Uint8Array(kept.length * kept[0].length * headDim);
  kept.forEach((layer, l) =>
    layer.forEach((pairs, g) => {
      const base = (l * layer.length + g) * headDim;
      const rest = Array.from({ length: half }, (_, i) => i).filter((i) => !pairs.includes(i));
      const order = [...shuffle([...pairs]), ...shuffle(rest)];
      order.forEach((pair, rank) => {
        out[base + pair] = rank;
        out[base + half + pair] = rank;
      });
    }),
  );
  return out;
}

function keptPairsOf(m: MlaModelWeights): number[][][] {
  return m.attention.map((a) => a.keptPairs.map((p) => Array.from(p)));
}

function mlaOf(v: LoadedVlm): MlaModelWeights {
  if (v.decoder.kind !== "mla") throw new Error("expected an MLA model");
  return v.decoder.model;
}

function logits(model: MlaModelWeights): Float32Array {
  const { session } = createMlaSession(model, "absorbed", { defaultImageGrid: fx.imageGrid });
  return session.append(ids, { imageEmbeds: embeds, logits: "all" });
}

async function writeReleased(out: string, rankFile: Uint8Array | null, rankPath = QK_PATH): Promise<void> {
  await mkdir(out, { recursive: true });
  const config = JSON.parse(await readFile(join(ours, "config.json"), "utf8")) as Record<string, Record<string, unknown>>;
  delete config.mla_edge;
  config.mha2mla.qk_tensor_path = rankPath;
  config.mha2mla.stage1_path = "/home/author/ckpt/stage1"; // author-local, never read
  await writeFile(join(out, "config.json"), JSON.stringify(config, null, 2));
  const src = await openSafetensorsFile(join(ours, "model.safetensors"));
  await writeSafetensorsFile(join(out, "model.safetensors"), copyTensors(src, src.names().filter((n) => !n.endsWith("self_attn.rope_pairs"))));
  await src.close();
  for (const f of ["visual.safetensors", "tokenizer.json"]) await copyFile(join(ours, f), join(out, f));
  if (rankFile !== null) {
    await mkdir(dirname(join(out, rankPath)), { recursive: true });
    await writeFile(join(out, rankPath), rankFile);
  }
}

beforeAll(async () => {
  fx = await loadTinyFixture(FIXTURE_DIR);
  tmp = await mkdtemp(join(tmpdir(), "mla-released-"));
  ours = join(tmp, "ours");
  // the modality-adaptive (mkl) ranking the release uses: different kept pairs per layer and KV head
  const calib = ["--calib", join(FIXTURE_DIR, "calib.jsonl"), "--calib-count", "8"];
  const r = await runCli(["convert", "--model", FIXTURE_DIR, "--out", ours, "--d-kv", "8", "--rope-dims", "8", "--strategy", "mkl", "--svd", "joint", ...calib]);
  expect(r.code, r.stderr).toBe(0);
  oursVlm = await loadVlmDir(ours);
  const kept = keptPairsOf(mlaOf(oursVlm));
  expect(new Set(kept.flat().map((p) => p.join())).size).toBeGreaterThan(1);
  released = join(tmp, "released");
  await writeReleased(released, uint8TensorPth("tiny_qwen_vl-ranks", releasedRanks(kept, 32, 7), [4, 2, 32]));
  const [c] = await readEvalCases(1);
  ids = [...imagePrefixTokens(fx.tokenizer, 16), ...fx.tokenizer.encode("shape at b3 none"), 5, ...fx.tokenizer.encode("where red circle")];
  embeds = runVisionTower(fx.vision, patchesFromU8(base64ToBytes(c.patches_u8)));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("released MHA2MLA layout with its .pth rank file", () => {
  it("loads by itself (rank file resolved relative to the folder) to the same model and the same logits", async () => {
    const rel = await loadVlmDir(released);
    expect(keptPairsOf(mlaOf(rel))).toEqual(keptPairsOf(mlaOf(oursVlm)));
    expect(relativeError(logits(mlaOf(rel)), logits(mlaOf(oursVlm)))).toBe(0);
  });

  it("mla-edge eval gives the same report on both layouts", async () => {
    const args = ["--eval", join(FIXTURE_DIR, "eval.jsonl"), "--limit", "4", "--codec", "int4", "--json"];
    const a = await runCli(["eval", "--model", ours, ...args]);
    const b = await runCli(["eval", "--model", released, ...args]);
    expect([a.code, b.code], b.stderr).toEqual([0, 0]);
    const da = JSON.parse(a.stdout) as Record<string, unknown>;
    const db = JSON.parse(b.stdout) as Record<string, unknown>;
    expect(db.kind).toBe("mla");
    expect({ ...db, model: null }).toEqual({ ...da, model: null });
  });

  it("a rank file with other kept pairs gives another model (the file is really used)", async () => {
    const other = join(tmp, "other-ranks");
    const kept = keptPairsOf(mlaOf(oursVlm)).map((l) => l.map(() => [0, 1, 2, 3]));
    await writeReleased(other, uint8TensorPth("r", releasedRanks(kept, 32, 3), [4, 2, 32]));
    const m = mlaOf(await loadVlmDir(other));
    expect(keptPairsOf(m)).toEqual(kept);
    expect(relativeError(logits(m), logits(mlaOf(oursVlm)))).toBeGreaterThan(1e-3);
  });

  it("the SDK loader reads the rank file through readFile, and says so when it has none", async () => {
    const files = {
      config: JSON.parse(await readFile(join(released, "config.json"), "utf8")) as unknown,
      weights: new Uint8Array(await readFile(join(released, "model.safetensors"))),
      tokenizer: JSON.parse(await readFile(join(released, "tokenizer.json"), "utf8")) as unknown,
      vision: new TypeScriptVisionEncoder(fx.vision),
      codec: loadNodeCodec(),
    };
    const asked: string[] = [];
    const model = await loadChatModel({
      ...files,
      readFile: async (p) => {
        asked.push(p);
        return p === QK_PATH ? new Uint8Array(await readFile(join(released, p))) : null;
      },
    });
    expect(asked).toEqual([QK_PATH]);
    expect(relativeError(logits(model.weights!), logits(mlaOf(oursVlm)))).toBe(0);
    await expect(loadChatModel(files)).rejects.toSatisfy((e: unknown) => e instanceof RuntimeError && /qk_tensor_path/.test(e.message));
  });

  it("eval --rank-file takes the rank file from elsewhere (a folder downloaded without it)", async () => {
    const bare = join(tmp, "bare");
    await writeReleased(bare, null);
    const args = ["--eval", join(FIXTURE_DIR, "eval.jsonl"), "--limit", "2", "--json"];
    const a = await runCli(["eval", "--model", ours, ...args]);
    const b = await runCli(["eval", "--model", bare, "--rank-file", join(released, QK_PATH), ...args]);
    expect([a.code, b.code], b.stderr).toEqual([0, 0]);
    expect({ ...(JSON.parse(b.stdout) as object), model: null }).toEqual({ ...(JSON.parse(a.stdout) as object), model: null });
    const wrong = await runCli(["eval", "--model", bare, "--rank-file", join(RANKS_DIR, "qwen25vl-mini-ranks.pth"), ...args]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("qwen25vl-mini-ranks.pth: rank tensor has shape [2, 2, 16]");
    const original = await runCli(["eval", "--model", FIXTURE_DIR, "--rank-file", join(released, QK_PATH), ...args]);
    expect(original.code).toBe(1);
    expect(original.stderr).toMatch(/a rank file applies to an MLA checkpoint/);
  });

  it("finds the rank file by its name alone beside config.json", async () => {
    expect(rankFileCandidates("./mkl/x/y-ranks.pth")).toEqual(["mkl/x/y-ranks.pth", "y-ranks.pth"]);
    const flat = join(tmp, "flat");
    await writeReleased(flat, null);
    await copyFile(join(released, QK_PATH), join(flat, "tiny_qwen_vl-ranks.pth"));
    expect(keptPairsOf(mlaOf(await loadVlmDir(flat)))).toEqual(keptPairsOf(mlaOf(oursVlm)));
  });
});

describe("rank files that do not fit stop with a typed error naming the file", () => {
  it("another model's rank file (qwen25vl-mini, [2, 2, 16]) is rank_file_mismatch, in the loader and the CLI", async () => {
    const dir = join(tmp, "mini-ranks");
    await writeReleased(dir, new Uint8Array(await readFile(join(RANKS_DIR, "qwen25vl-mini-ranks.pth"))));
    await expect(loadVlmDir(dir)).rejects.toSatisfy(
      (e: unknown) => e instanceof CheckpointError && e.code === "rank_file_mismatch" && e.message.includes(QK_PATH) && e.message.includes("[4, 2, 32]"),
    );
    const r = await runCli(["eval", "--model", dir, "--eval", join(FIXTURE_DIR, "eval.jsonl"), "--limit", "1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*tiny_qwen_vl-ranks\.pth: rank tensor has shape \[2, 2, 16\]; this model needs \[4, 2, 32\]/);
  });

  it("ranks that are not a permutation, or halves that differ, are rank_file_mismatch", () => {
    const geometry = { layers: 1, kvHeads: 1, headDim: 8, ropeDims: 4 };
    const t = (v: number[]) => ({ dtype: "uint8" as const, shape: [1, 1, 8], data: Uint8Array.from(v) });
    expect(keptPairsFromRankTensor(t([2, 0, 3, 1, 2, 0, 3, 1]), geometry, "f.pth").keptPairs).toEqual([[[1, 3]]]);
    for (const bad of [
      [0, 0, 1, 2, 0, 0, 1, 2],
      [0, 1, 2, 3, 1, 0, 2, 3],
      [0, 1, 2, 4, 0, 1, 2, 4],
    ]) {
      expect(() => keptPairsFromRankTensor(t(bad), geometry, "f.pth")).toThrow(expect.objectContaining({ code: "rank_file_mismatch" }));
    }
  });

  it("a hostile pickle in place of the rank file is refused (PthError), and a missing file is io naming the paths", async () => {
    const evil = join(tmp, "evil");
    await writeReleased(evil, new Uint8Array(await readFile(join(RANKS_DIR, "refuse-me.pth"))));
    await expect(loadVlmDir(evil)).rejects.toSatisfy((e: unknown) => e instanceof PthError && e.refused === "posix.system");
    const r = await runCli(["eval", "--model", evil, "--eval", join(FIXTURE_DIR, "eval.jsonl"), "--limit", "1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/refused/);
    const missing = join(tmp, "missing");
    await writeReleased(missing, null);
    await expect(loadVlmDir(missing)).rejects.toSatisfy(
      (e: unknown) => e instanceof CheckpointError && e.code === "io" && e.message.includes(join(missing, QK_PATH)),
    );
  });
});
