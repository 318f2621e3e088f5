// The bench:decode baseline graph (tests/bench/onnx-decoder.ts) does the real work: on a small geometry, onnxruntime-web
// (wasm EP, its CPU kernels of MatMulNBits, SimplifiedLayerNormalization, GroupQueryAttention with rotary) gives the
// logits of the f64 reference — a decode step over past K/V and a 4-token prompt — and present K/V = past ++ new.
import * as ort from "onnxruntime-web";
import { describe, expect, it } from "vitest";
import { mulberry32 } from "../helpers/mulberry32.ts";
import { decoderOnnx, decoderRef, pastKey, pastValue, randomDecoderWeights, type DecoderGeometry } from "./onnx-decoder.ts";

const G: DecoderGeometry = { hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96, vocab: 300, ropeTheta: 1e6, eps: 1e-6, block: 32 };

function relErr(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    d = Math.max(d, Math.abs(a[i] - ref[i]));
    m = Math.max(m, Math.abs(ref[i]));
  }
  return d / m;
}

async function run(S: number, P: number, seed: number, mutate?: (w: ReturnType<typeof randomDecoderWeights>) => void) {
  const w = randomDecoderWeights(G, 11, "quantize");
  const onnx = decoderOnnx(G, w, 64);
  mutate?.(w);
  const rnd = mulberry32(seed);
  const embeds = Float32Array.from({ length: S * G.hidden }, () => rnd() * 2 - 1);
  const pk = w.layers.map(() => Float32Array.from({ length: G.kvHeads * P * G.headDim }, () => rnd() * 2 - 1));
  const pv = w.layers.map(() => Float32Array.from({ length: G.kvHeads * P * G.headDim }, () => rnd() * 2 - 1));
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(onnx.model, { executionProviders: ["wasm"], externalData: [{ path: onnx.dataPath, data: onnx.data }] });
  const feeds: Record<string, ort.Tensor> = {
    inputs_embeds: new ort.Tensor("float32", embeds, [1, S, G.hidden]),
    seqlens_k: new ort.Tensor("int32", Int32Array.of(P + S - 1), [1]),
    total_sequence_length: new ort.Tensor("int32", Int32Array.of(P + S), []),
  };
  for (let l = 0; l < G.layers; l++) {
    feeds[pastKey(l)] = new ort.Tensor("float32", pk[l], [1, G.kvHeads, P, G.headDim]);
    feeds[pastValue(l)] = new ort.Tensor("float32", pv[l], [1, G.kvHeads, P, G.headDim]);
  }
  const out = await session.run(feeds);
  await session.release();
  return { out, ref: decoderRef(G, w, embeds, S, pk, pv, P), pk, pv };
}

describe("bench:decode baseline graph on onnxruntime-web (wasm EP) vs the f64 reference", () => {
  it("decode step after 5 past tokens: logits within f32 rounding, present K/V = past ++ one new row", async () => {
    const { out, ref, pk, pv } = await run(1, 5, 1);
    expect(out.logits.dims).toEqual([1, 1, G.vocab]);
    const err = relErr(out.logits.data as Float32Array, ref);
    expect(err).toBeLessThanOrEqual(1e-5); // 2.0e-7 measured
    for (let l = 0; l < G.layers; l++) {
      const k = out[`present.${l}.key`];
      expect(k.dims).toEqual([1, G.kvHeads, 6, G.headDim]);
      const kd = k.data as Float32Array;
      const vd = out[`present.${l}.value`].data as Float32Array;
      for (let h = 0; h < G.kvHeads; h++) {
        expect(Array.from(kd.subarray(h * 6 * G.headDim, (h * 6 + 5) * G.headDim))).toEqual(Array.from(pk[l].subarray(h * 5 * G.headDim, (h + 1) * 5 * G.headDim)));
        expect(Array.from(vd.subarray(h * 6 * G.headDim, (h * 6 + 5) * G.headDim))).toEqual(Array.from(pv[l].subarray(h * 5 * G.headDim, (h + 1) * 5 * G.headDim)));
      }
    }
  });

  it("4-token prompt without past (causal, positions 0…3): logits of the last token", async () => {
    const { out, ref } = await run(4, 0, 2);
    expect(relErr(out.logits.data as Float32Array, ref)).toBeLessThanOrEqual(1e-5);
  });

  it("the comparison can fail: a reference whose layer-1 ln2 differs from the graph's is far off", async () => {
    // The ONNX graph is built before the mutation, so the reference sees different weights than the graph.
    const { out, ref } = await run(1, 5, 1, (w) => w.layers[1].ln2.fill(1));
    expect(relErr(out.logits.data as Float32Array, ref)).toBeGreaterThan(1e-3); // 3e-3 measured: 300× the tolerance
  });
});
