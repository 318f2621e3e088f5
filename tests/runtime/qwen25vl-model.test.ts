// The Qwen2.5-VL model (decoder + vision tower + M-RoPE) on the CPU reference path against
// fixtures/qwen25vl-mini/reference.json: position ids and rope deltas, last-prompt logits (top 20 and logsumexp),
// layer K/V of the last prompt token, 12 greedy ids, and the 2-turn conversation run as two turns (and from a session
// that knows only the stored length and next position) equal to the single pass.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { openCheckpointDir } from "../../checkpoint/io.node.ts";
import { DecoderSession } from "../../runtime/decoder-session.ts";
import { GqaAttentionBackend } from "../../runtime/gqa-attention.ts";
import { appendTurn, createQwen25VLSession, loadQwen25VL, Qwen25VLError, type Qwen25VLModel, type VisionInput } from "../../runtime/qwen2_5_vl-model.ts";
import { Sampler } from "../../runtime/sampler.ts";
import { loadReference, maxAbsDiff, MINI_DIR, pixelValuesNoResize, refCase, type RefCase, type Reference } from "./qwen25vl-fixture.ts";

let ref: Reference;
let model: Qwen25VLModel;

beforeAll(async () => {
  ref = loadReference();
  const ck = await openCheckpointDir(MINI_DIR);
  model = await loadQwen25VL(ck.source, JSON.parse(readFileSync(join(MINI_DIR, "config.json"), "utf8")));
  await ck.source.close();
}, 60_000);

/** The case's images from their no-resize (or already resized) PNGs: the tight-tolerance inputs. */
function images(c: RefCase): VisionInput[] {
  return c.images.map((img) => {
    const { pixels, grid } = pixelValuesNoResize(join(MINI_DIR, ref.images[img.url].resized_file ?? img.url));
    return { pixelValues: pixels, grid };
  });
}

function logsumexp(l: Float32Array): number {
  let m = -Infinity;
  for (const x of l) m = Math.max(m, x);
  let s = 0;
  for (const x of l) s += Math.exp(x - m);
  return m + Math.log(s);
}

function expectLogits(logits: Float32Array, c: RefCase): void {
  for (const [id, v] of c.logits_last.top20) expect(Math.abs(logits[id] - v), `logit ${id}`).toBeLessThanOrEqual(2e-3);
  expect(Math.abs(logsumexp(logits) - c.logits_last.logsumexp)).toBeLessThanOrEqual(2e-3);
}

/** Greedy decoding with the runtime's sampler at temperature 0, recording each step's top-1 margin. */
function greedy(session: DecoderSession, first: Float32Array, n: number): { ids: number[]; margins: number[] } {
  const s = new Sampler({ temperature: 0 });
  const ids: number[] = [];
  const margins: number[] = [];
  let logits = first;
  for (let step = 0; step < n; step++) {
    const id = s.next(logits);
    let second = -Infinity;
    for (let i = 0; i < logits.length; i++) if (i !== id) second = Math.max(second, logits[i]);
    margins.push(logits[id] - second);
    ids.push(id);
    if (step < n - 1) logits = session.append([id]);
  }
  return { ids, margins };
}

function runCase(c: RefCase) {
  const { session, backend } = createQwen25VLSession(model);
  if (!(backend instanceof GqaAttentionBackend)) throw new Error("expected the original decoder");
  let positions: Int32Array | null = null;
  const logits = appendTurn(model, session, c.input_ids, images(c), {
    hook: (cap) => {
      if (cap.layer === 0) positions = Int32Array.from(cap.block.positions);
    },
  });
  return { session, backend, logits, positions: positions! };
}

function expectKv(backend: GqaAttentionBackend, c: RefCase, length: number): void {
  const { numKvHeads: nkv, headDim: dh } = model.config.text;
  for (const { layer, k, v } of c.kv_last_prompt_token) {
    const K = backend.keys(layer);
    const V = backend.values(layer);
    for (let g = 0; g < nkv; g++) {
      const o = (length - 1) * nkv * dh + g * dh;
      expect(maxAbsDiff(K.subarray(o, o + k[g].length), k[g]), `K layer ${layer} head ${g}`).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(V.subarray(o, o + v[g].length), v[g]), `V layer ${layer} head ${g}`).toBeLessThanOrEqual(1e-4);
    }
  }
}

describe("Qwen2.5-VL on the CPU reference path (qwen25vl-mini)", () => {
  for (const name of ["text_only", "one_image", "two_turn"]) {
    it(`${name}: position ids, rope delta, logits, K/V and 12 greedy ids equal the reference`, () => {
      const c = refCase(ref, name);
      const { session, backend, logits, positions } = runCase(c);
      const n = c.num_tokens;
      expect(Array.from(positions.subarray(0, n))).toEqual(c.position_ids[0]);
      expect(Array.from(positions.subarray(n, 2 * n))).toEqual(c.position_ids[1]);
      expect(Array.from(positions.subarray(2 * n))).toEqual(c.position_ids[2]);
      expect(session.nextPosition - session.length).toBe(c.rope_deltas);
      expectLogits(logits, c);
      expectKv(backend, c, n);
      const g = greedy(session, logits, c.greedy.n);
      expect(g.ids).toEqual(c.greedy.ids);
      expect(maxAbsDiff(g.margins, c.greedy.top1_margins)).toBeLessThanOrEqual(4e-3);
    });
  }

  it("two_turn as two turns (turn 1 prefill + answer, then turn 2) equals the single pass; so does a session restored from (length, next position)", () => {
    const c = refCase(ref, "two_turn");
    const t1 = c.turn1!;
    const { session } = createQwen25VLSession(model);
    appendTurn(model, session, c.input_ids.slice(0, t1.input_ids_len), images(c), { logits: "none" });
    expect(session.nextPosition - session.length).toBe(t1.rope_deltas);
    const rest = c.input_ids.slice(t1.input_ids_len);
    expect(rest.slice(0, t1.answer_ids.length)).toEqual(t1.answer_ids);
    // A session that knows only what the edge stores with the cache (its length and next position) over the same
    // K/V continues with the same positions.
    const restored = new DecoderSession(model.config.text, model.decoder.model.shell, session.backend);
    restored.adoptCache(session.length, session.nextPosition);
    const logits = appendTurn(model, restored, rest);
    expectLogits(logits, c);
    expect(restored.nextPosition - restored.length).toBe(c.rope_deltas);
    expect(greedy(restored, logits, c.greedy.n).ids).toEqual(c.greedy.ids);
  });

  it("a turn whose tokens and images disagree is refused before anything is appended", () => {
    const c = refCase(ref, "one_image");
    const { session } = createQwen25VLSession(model);
    expect(() => appendTurn(model, session, c.input_ids, [])).toThrow(Qwen25VLError);
    expect(session.length).toBe(0);
  });
});
