// The factorisations on the fixture model's real weights (tests/fixtures tiny-qwen-vl: Qwen2.5-VL layout, n_kv = 2,
// d_h = 32, d = 128) and on real layer-0 attention inputs of its text tokens (RMSNorm of the token embeddings — exact
// for layer 0), calibrated on calib.jsonl and scored on eval.jsonl. Full-model calibration capture comes later from
// the model runtime; this pins the API against real checkpoint tensors now.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { WordTokenizer } from "../../model/tokenizer.ts";
import { openSafetensorsFile } from "../../convert/checkpoint/node-io.ts";
import { fromFloat32, matrix, stackRows, subtract, frobeniusNormSquared, type Matrix } from "../../convert/linalg/matrix.ts";
import { matmul } from "../../convert/linalg/matmul.ts";
import { ModalitySecondMoments } from "../../convert/lowrank/modality-moments.ts";
import { mdSvdKv } from "../../convert/lowrank/md-svd.ts";
import { kvReconstructionError } from "../../convert/lowrank/reconstruction-error.ts";
import { svdJoint } from "../../convert/lowrank/svd-joint.ts";
import type { KvDims } from "../../convert/lowrank/types.ts";
import { maxAbsDiff } from "../linalg/helpers.ts";

const DIR = new URL("../../fixtures/tiny-qwen-vl/", import.meta.url);
const config = JSON.parse(readFileSync(new URL("config.json", DIR), "utf8")) as {
  hidden_size: number; num_key_value_heads: number; head_dim: number; rms_norm_eps: number;
  image_token_id: number; vision_start_token_id: number; vision_end_token_id: number;
};
const d = config.hidden_size, nKv = config.num_key_value_heads, dh = config.head_dim;
// Keep 4 rotary pairs per head (r_dim = 8; pairs 0–3 = dims 0–3 and 16–19 in the rotate-half layout): NoPE = the rest.
const ROPE_PAIRS = 4;
const DIMS: KvDims = { nKv, dNope: dh - 2 * ROPE_PAIRS, dHead: dh, hidden: d };
const IMAGE_IDS = new Set([config.image_token_id, config.vision_start_token_id, config.vision_end_token_id]);

async function loadLayer0(): Promise<{ wkNope: Matrix; wv: Matrix; embed: Float32Array; norm: Float32Array }> {
  const file = await openSafetensorsFile(fileURLToPath(new URL("model.safetensors", DIR)));
  try {
    const wk = fromFloat32(nKv * dh, d, await file.readFloat32("model.layers.0.self_attn.k_proj.weight", [nKv * dh, d]));
    const wv = fromFloat32(nKv * dh, d, await file.readFloat32("model.layers.0.self_attn.v_proj.weight", [nKv * dh, d]));
    const embed = await file.readFloat32("model.embed_tokens.weight");
    const norm = await file.readFloat32("model.layers.0.input_layernorm.weight", [d]);
    // NoPE rows, head-major: head g keeps its dims with pair index ≥ ROPE_PAIRS.
    const wkNope = matrix(nKv * DIMS.dNope, d);
    let r = 0;
    for (let g = 0; g < nKv; g++)
      for (let i = 0; i < dh; i++)
        if (i % (dh / 2) >= ROPE_PAIRS) wkNope.data.set(wk.data.subarray((g * dh + i) * d, (g * dh + i + 1) * d), d * r++);
    return { wkNope, wv, embed, norm };
  } finally {
    await file.close();
  }
}

const VOCAB = WordTokenizer.fromJson(JSON.parse(readFileSync(new URL("tokenizer.json", DIR), "utf8"))).vocab;

/**
 * Token ids of a jsonl file: calib.jsonl's input_ids, or eval.jsonl's turns (question words, answer words, <end>)
 * through the word-level tokenizer.
 */
function tokenIds(file: string): number[] {
  const ids: number[] = [];
  for (const line of readFileSync(new URL(file, DIR), "utf8").split("\n")) {
    if (line.trim() === "") continue;
    const rec = JSON.parse(line) as { input_ids?: number[]; turns?: { question: string; answer: string }[] };
    if (rec.input_ids) ids.push(...rec.input_ids);
    for (const turn of rec.turns ?? []) {
      for (const word of `${turn.question} ${turn.answer} <end>`.split(" ")) {
        const id = VOCAB.indexOf(word);
        if (id < 0) throw new Error(`eval.jsonl word ${word} is not in tokenizer.json`);
        ids.push(id);
      }
    }
  }
  return ids;
}

/** Layer-0 attention inputs (RMSNorm(embed) ∘ weight) of a file's tokens, row-major, with the image routing mask. */
function layer0Inputs(file: string, embed: Float32Array, norm: Float32Array): { rows: Float32Array; isImage: Uint8Array } {
  const ids = tokenIds(file);
  const rows = new Float32Array(ids.length * d);
  const isImage = new Uint8Array(ids.length);
  ids.forEach((id, t) => {
    isImage[t] = IMAGE_IDS.has(id) ? 1 : 0;
    let ms = 0;
    for (let j = 0; j < d; j++) ms += embed[id * d + j] ** 2;
    const inv = 1 / Math.sqrt(ms / d + config.rms_norm_eps);
    for (let j = 0; j < d; j++) rows[t * d + j] = embed[id * d + j] * inv * norm[j];
  });
  return { rows, isImage };
}

describe("fixture tiny-qwen-vl, layer 0", async () => {
  const { wkNope, wv, embed, norm } = await loadLayer0();

  it("svdJoint should reproduce the real [W_k,nope ; W_v] at full rank and meet Eckart–Young at d_kv = 8", () => {
    const full = svdJoint(wkNope, wv, DIMS, DIMS.nKv * (DIMS.dNope + DIMS.dHead));
    expect(maxAbsDiff(matmul(full.upK, full.down).data, wkNope.data)).toBeLessThan(1e-12);
    expect(maxAbsDiff(matmul(full.upV, full.down).data, wv.data)).toBeLessThan(1e-12);
    const rank = nKv * 8;
    const r = svdJoint(wkNope, wv, DIMS, rank);
    const err = frobeniusNormSquared(subtract(stackRows(wkNope, wv), matmul(stackRows(r.upK, r.upV), r.down)));
    const discarded = Array.from(r.singularValues.slice(rank)).reduce((s, x) => s + x * x, 0);
    expect(Math.abs(err - discarded) / discarded).toBeLessThan(1e-10);
  });

  it("MD-SVD (text) should beat weight SVD on held-out real text-token inputs at d_kv = 8", () => {
    const calib = new ModalitySecondMoments(d);
    const c = layer0Inputs("calib.jsonl", embed, norm);
    calib.add(c.rows, c.isImage);
    const held = new ModalitySecondMoments(d);
    const h = layer0Inputs("eval.jsonl", embed, norm);
    held.add(h.rows, h.isImage);
    const rank = nKv * 8;
    const sCal = calib.text.secondMoment();
    const sHeld = held.text.secondMoment(); // eval turns are text only
    expect(held.image.count).toBe(0);
    const md = mdSvdKv(wkNope, wv, DIMS, sCal, rank);
    const joint = svdJoint(wkNope, wv, DIMS, rank);
    const eMd = kvReconstructionError(wkNope, wv, md, sHeld);
    const eJoint = kvReconstructionError(wkNope, wv, joint, sHeld);
    expect(eMd).toBeLessThan(0.5 * eJoint);
  });
});
