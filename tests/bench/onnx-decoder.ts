// The decode baseline of `bench:decode`: a Qwen2-style decoder as one ONNX graph, the way transformers.js runs a
// Qwen2.5-VL language model on onnxruntime-web (decoder_model_merged: inputs_embeds in, past K/V in, present K/V and
// logits out), built with tests/helpers/onnx-proto.ts. Per layer: SimplifiedLayerNormalization → MatMulNBits q/k/v (int4,
// block 32, the bundle packer's bytes: checkpoint/bundle/matmul-nbits.ts) + bias → com.microsoft.GroupQueryAttention
// over past K/V with its own rotary (do_rotary, rotate_half, cos/sin caches) → MatMulNBits o_proj → residual →
// SimplifiedLayerNormalization → MatMulNBits gate/up → SiLU (Sigmoid·Mul) · up → MatMulNBits down → residual; then the
// final norm on the last position (Slice) and the MatMulNBits LM head (tied: the embedding's bytes).
// Weights travel as external data (one blob, `externalData` of InferenceSession.create), as transformers.js loads
// large models. `decoderRef` is the f64 CPU reference of the same graph.
import { dequantizeMatMulNBits, quantizeMatMulNBits, kBlocksOf, type MatMulNBitsWeight, type QuantBlock } from "../../checkpoint/bundle/matmul-nbits.ts";
import { f16ToF32, f32ToF16Bits } from "../../format/codec/fp16.ts";
import { mulberry32 } from "../helpers/mulberry32.ts";
import { externalInitializer, initializer, onnxModel, valueInfo, type ElemType, type OnnxNode } from "../helpers/onnx-proto.ts";

export interface DecoderGeometry {
  readonly hidden: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly intermediate: number;
  readonly vocab: number;
  readonly ropeTheta: number;
  readonly eps: number;
  readonly block: QuantBlock;
}

/** Qwen2.5-VL-3B's language model (tied embeddings). */
export const QWEN25VL_3B_TEXT: DecoderGeometry = { hidden: 2048, layers: 36, heads: 16, kvHeads: 2, headDim: 128, intermediate: 11008, vocab: 151936, ropeTheta: 1e6, eps: 1e-6, block: 32 };

export interface DecoderLayerWeights {
  readonly ln1: Float32Array;
  readonly ln2: Float32Array;
  readonly q: MatMulNBitsWeight;
  readonly k: MatMulNBitsWeight;
  readonly v: MatMulNBitsWeight;
  readonly bq: Float32Array;
  readonly bk: Float32Array;
  readonly bv: Float32Array;
  readonly o: MatMulNBitsWeight;
  readonly gate: MatMulNBitsWeight;
  readonly up: MatMulNBitsWeight;
  readonly down: MatMulNBitsWeight;
}

export interface DecoderWeights {
  readonly layers: readonly DecoderLayerWeights[];
  readonly finalNorm: Float32Array;
  /** The tied embedding [vocab, hidden] as the LM head. */
  readonly lmHead: MatMulNBitsWeight;
}

/**
 * Deterministic random weights. `quantize`: N(0, 0.02²)-like f32 values through the bundle packer's quantizer
 * (symmetric int4); `codes`: random int4 codes and f16 scales written directly (the same distribution of bytes at a
 * fraction of the time, for the 3B benchmark).
 */
export function randomDecoderWeights(g: DecoderGeometry, seed: number, mode: "quantize" | "codes"): DecoderWeights {
  const rnd = mulberry32(seed);
  const normal = () => {
    const u = Math.max(rnd(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
  };
  const lin = (n: number, k: number, std: number): MatMulNBitsWeight => {
    if (mode === "quantize") return quantizeMatMulNBits(Float32Array.from({ length: n * k }, () => std * normal()), { n, k, bits: 4, block: g.block });
    const kb = kBlocksOf(k, g.block);
    const b = new Uint8Array(n * kb * (g.block / 2));
    for (let i = 0; i < b.length; i += 4) {
      const w = (rnd() * 0x100000000) >>> 0;
      b[i] = w & 255;
      b[i + 1] = (w >>> 8) & 255;
      b[i + 2] = (w >>> 16) & 255;
      b[i + 3] = w >>> 24;
    }
    // |w| ≈ std·2.5 at most per block of 32 normals → scale = max/8.
    const s = f32ToF16Bits((std * 2.5) / 8, "nearest-even");
    const scales = new Uint16Array(n * kb);
    for (let i = 0; i < scales.length; i++) scales[i] = s + ((rnd() * 64) | 0) - 32;
    return { n, k, bits: 4, block: g.block, b, scales, zeroPoints: null };
  };
  const vec = (n: number, base: number, spread: number) => Float32Array.from({ length: n }, () => base + spread * normal());
  const H = g.hidden;
  const layers: DecoderLayerWeights[] = [];
  for (let l = 0; l < g.layers; l++) {
    layers.push({
      ln1: vec(H, 1, 0.1),
      ln2: vec(H, 1, 0.1),
      q: lin(g.heads * g.headDim, H, 0.04),
      k: lin(g.kvHeads * g.headDim, H, 0.04),
      v: lin(g.kvHeads * g.headDim, H, 0.04),
      bq: vec(g.heads * g.headDim, 0, 0.1),
      bk: vec(g.kvHeads * g.headDim, 0, 0.1),
      bv: vec(g.kvHeads * g.headDim, 0, 0.1),
      o: lin(H, g.heads * g.headDim, 0.04),
      gate: lin(g.intermediate, H, 0.04),
      up: lin(g.intermediate, H, 0.04),
      down: lin(H, g.intermediate, 0.03),
    });
  }
  return { layers, finalNorm: vec(H, 1, 0.1), lmHead: lin(g.vocab, H, 0.05) };
}

export interface DecoderOnnx {
  readonly model: Uint8Array;
  /** External data file name (the `path` to give `externalData`) and its bytes. */
  readonly dataPath: string;
  readonly data: Uint8Array;
}

/** Names of the graph's past/present K/V of layer `l`. */
export const pastKey = (l: number) => `past_key_values.${l}.key`;
export const pastValue = (l: number) => `past_key_values.${l}.value`;

/**
 * The decoder graph. Inputs: inputs_embeds [1, S, H] f32, past_key_values.{l}.key/value [1, n_kv, P, d_h] f32
 * (already rotated, as GQA's present outputs), seqlens_k [1] int32 = P + S − 1, total_sequence_length int32 = P + S.
 * Outputs: logits [1, 1, vocab] (last position), present.{l}.key/value [1, n_kv, P + S, d_h]. Rotary positions
 * are P … P + S − 1; `maxPositions` sizes the cos/sin caches.
 */
export function decoderOnnx(g: DecoderGeometry, w: DecoderWeights, maxPositions: number): DecoderOnnx {
  const dataPath = "decoder.onnx_data";
  const parts: Uint8Array[] = [];
  let offset = 0;
  const inits: number[][] = [];
  const ext = (name: string, elem: ElemType, dims: number[], bytes: Uint8Array) => {
    inits.push(externalInitializer(name, elem, dims, dataPath, offset, bytes.byteLength));
    parts.push(bytes);
    const pad = (64 - (bytes.byteLength % 64)) % 64;
    if (pad) parts.push(new Uint8Array(pad));
    offset += bytes.byteLength + pad;
  };
  const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const nodes: OnnxNode[] = [];
  const matmul = (x: string, name: string, q: MatMulNBitsWeight, y: string) => {
    const kb = kBlocksOf(q.k, q.block);
    ext(`${name}.B`, "uint8", [q.n, kb, (q.block * q.bits) / 8], q.b);
    // Activations are f32 (as transformers.js' q4 models): our f16 scales widened exactly.
    ext(`${name}.scales`, "float", [q.n * kb], f32(Float32Array.from(q.scales, f16ToF32)));
    nodes.push({ op: "MatMulNBits", domain: "com.microsoft", inputs: [x, `${name}.B`, `${name}.scales`], outputs: [y], intAttrs: { K: q.k, N: q.n, bits: q.bits, block_size: q.block } });
  };
  const norm = (x: string, wName: string, wv: Float32Array, y: string) => {
    ext(wName, "float", [wv.length], f32(wv));
    nodes.push({ op: "SimplifiedLayerNormalization", inputs: [x, wName], outputs: [y], floatAttrs: { epsilon: g.eps } });
  };
  const addBias = (x: string, name: string, b: Float32Array, y: string) => {
    ext(name, "float", [b.length], f32(b));
    nodes.push({ op: "Add", inputs: [x, name], outputs: [y] });
  };
  const half = g.headDim / 2;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(g.ropeTheta, (-2 * i) / g.headDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  ext("cos_cache", "float", [maxPositions, half], f32(cos));
  ext("sin_cache", "float", [maxPositions, half], f32(sin));
  let h = "inputs_embeds";
  for (const [l, lw] of w.layers.entries()) {
    const p = `layers.${l}`;
    norm(h, `${p}.ln1`, lw.ln1, `${p}.n1`);
    matmul(`${p}.n1`, `${p}.q_proj`, lw.q, `${p}.q0`);
    addBias(`${p}.q0`, `${p}.q_bias`, lw.bq, `${p}.q`);
    matmul(`${p}.n1`, `${p}.k_proj`, lw.k, `${p}.k0`);
    addBias(`${p}.k0`, `${p}.k_bias`, lw.bk, `${p}.k`);
    matmul(`${p}.n1`, `${p}.v_proj`, lw.v, `${p}.v0`);
    addBias(`${p}.v0`, `${p}.v_bias`, lw.bv, `${p}.v`);
    nodes.push({
      op: "GroupQueryAttention",
      domain: "com.microsoft",
      inputs: [`${p}.q`, `${p}.k`, `${p}.v`, pastKey(l), pastValue(l), "seqlens_k", "total_sequence_length", "cos_cache", "sin_cache"],
      outputs: [`${p}.attn`, `present.${l}.key`, `present.${l}.value`],
      intAttrs: { num_heads: g.heads, kv_num_heads: g.kvHeads, do_rotary: 1, rotary_interleaved: 0 },
    });
    matmul(`${p}.attn`, `${p}.o_proj`, lw.o, `${p}.o`);
    nodes.push({ op: "Add", inputs: [h, `${p}.o`], outputs: [`${p}.h1`] });
    norm(`${p}.h1`, `${p}.ln2`, lw.ln2, `${p}.n2`);
    matmul(`${p}.n2`, `${p}.gate_proj`, lw.gate, `${p}.g`);
    matmul(`${p}.n2`, `${p}.up_proj`, lw.up, `${p}.u`);
    nodes.push({ op: "Sigmoid", inputs: [`${p}.g`], outputs: [`${p}.sg`] });
    nodes.push({ op: "Mul", inputs: [`${p}.g`, `${p}.sg`], outputs: [`${p}.silu`] });
    nodes.push({ op: "Mul", inputs: [`${p}.silu`, `${p}.u`], outputs: [`${p}.act`] });
    matmul(`${p}.act`, `${p}.down_proj`, lw.down, `${p}.d`);
    nodes.push({ op: "Add", inputs: [`${p}.h1`, `${p}.d`], outputs: [`${p}.out`] });
    h = `${p}.out`;
  }
  const i64 = (v: bigint) => new Uint8Array(BigInt64Array.of(v).buffer);
  const small = [
    initializer("last_start", "int64", [1], i64(-1n)),
    initializer("last_end", "int64", [1], i64(0x7fffffffffffffffn)),
    initializer("last_axis", "int64", [1], i64(1n)),
  ];
  nodes.push({ op: "Slice", inputs: [h, "last_start", "last_end", "last_axis"], outputs: ["h_last"] });
  norm("h_last", "final_norm", w.finalNorm, "n_final");
  matmul("n_final", "lm_head", w.lmHead, "logits");
  const Hd = g.headDim;
  const model = onnxModel({
    name: "qwen2_decoder",
    nodes,
    initializers: [...small, ...inits],
    inputs: [
      valueInfo("inputs_embeds", "float", [1, "sequence", g.hidden]),
      ...w.layers.flatMap((_, l) => [valueInfo(pastKey(l), "float", [1, g.kvHeads, "past", Hd]), valueInfo(pastValue(l), "float", [1, g.kvHeads, "past", Hd])]),
      valueInfo("seqlens_k", "int32", [1]),
      valueInfo("total_sequence_length", "int32", []),
    ],
    outputs: [
      valueInfo("logits", "float", [1, 1, g.vocab]),
      ...w.layers.flatMap((_, l) => [valueInfo(`present.${l}.key`, "float", [1, g.kvHeads, "total", Hd]), valueInfo(`present.${l}.value`, "float", [1, g.kvHeads, "total", Hd])]),
    ],
  });
  const data = new Uint8Array(offset);
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.byteLength;
  }
  return { model, dataPath, data };
}

/** Bytes of the int4 weights (B + f16 scales, as the bundle stores them) of the graph. */
export function decoderWeightBytes(w: DecoderWeights): number {
  const q = (m: MatMulNBitsWeight) => m.b.byteLength + m.scales.byteLength;
  let s = q(w.lmHead) + w.finalNorm.byteLength;
  for (const l of w.layers) s += [l.q, l.k, l.v, l.o, l.gate, l.up, l.down].reduce((a, m) => a + q(m), 0) + (l.ln1.length + l.ln2.length + l.bq.length + l.bk.length + l.bv.length) * 4;
  return s;
}

/**
 * f64 reference: logits of the last position for inputs_embeds [S, H] after past K/V (per layer [n_kv, P, d_h],
 * already rotated), positions P … P + S − 1, causal.
 */
export function decoderRef(g: DecoderGeometry, w: DecoderWeights, embeds: Float32Array, S: number, pastK: readonly Float32Array[], pastV: readonly Float32Array[], P: number): Float64Array {
  const H = g.hidden;
  const D = g.headDim;
  const half = D / 2;
  const linear = (x: Float64Array, rows: number, q: MatMulNBitsWeight, bias?: Float32Array) => {
    const W = dequantizeMatMulNBits(q);
    const y = new Float64Array(rows * q.n);
    for (let r = 0; r < rows; r++) {
      for (let n = 0; n < q.n; n++) {
        let s = bias ? bias[n] : 0;
        for (let k = 0; k < q.k; k++) s += x[r * q.k + k] * W[n * q.k + k];
        y[r * q.n + n] = s;
      }
    }
    return y;
  };
  const rms = (x: Float64Array, rows: number, wv: Float32Array) => {
    const y = new Float64Array(rows * H);
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let k = 0; k < H; k++) ss += x[r * H + k] ** 2;
      const inv = 1 / Math.sqrt(ss / H + g.eps);
      for (let k = 0; k < H; k++) y[r * H + k] = x[r * H + k] * inv * wv[k];
    }
    return y;
  };
  const rope = (x: Float64Array, heads: number) => {
    for (let s = 0; s < S; s++) {
      for (let h = 0; h < heads; h++) {
        const o = (s * heads + h) * D;
        for (let i = 0; i < half; i++) {
          const a = (P + s) * Math.pow(g.ropeTheta, (-2 * i) / D);
          const c = Math.cos(a);
          const sn = Math.sin(a);
          const x1 = x[o + i];
          const x2 = x[o + i + half];
          x[o + i] = x1 * c - x2 * sn;
          x[o + i + half] = x2 * c + x1 * sn;
        }
      }
    }
  };
  const x = Float64Array.from(embeds);
  const group = g.heads / g.kvHeads;
  for (const [l, lw] of w.layers.entries()) {
    const n1 = rms(x, S, lw.ln1);
    const q = linear(n1, S, lw.q, lw.bq);
    const k = linear(n1, S, lw.k, lw.bk);
    const v = linear(n1, S, lw.v, lw.bv);
    rope(q, g.heads);
    rope(k, g.kvHeads);
    const T = P + S;
    const keyAt = (kv: number, j: number, e: number) => (j < P ? pastK[l][(kv * P + j) * D + e] : k[((j - P) * g.kvHeads + kv) * D + e]);
    const valAt = (kv: number, j: number, e: number) => (j < P ? pastV[l][(kv * P + j) * D + e] : v[((j - P) * g.kvHeads + kv) * D + e]);
    const attn = new Float64Array(S * g.heads * D);
    const sc = new Float64Array(T);
    for (let s = 0; s < S; s++) {
      for (let h = 0; h < g.heads; h++) {
        const kv = Math.floor(h / group);
        const visible = P + s + 1;
        let m = -Infinity;
        for (let j = 0; j < visible; j++) {
          let d = 0;
          for (let e = 0; e < D; e++) d += q[(s * g.heads + h) * D + e] * keyAt(kv, j, e);
          sc[j] = d / Math.sqrt(D);
          m = Math.max(m, sc[j]);
        }
        let z = 0;
        for (let j = 0; j < visible; j++) z += sc[j] = Math.exp(sc[j] - m);
        for (let j = 0; j < visible; j++) for (let e = 0; e < D; e++) attn[(s * g.heads + h) * D + e] += (sc[j] / z) * valAt(kv, j, e);
      }
    }
    const o = linear(attn, S, lw.o);
    for (let i = 0; i < x.length; i++) x[i] += o[i];
    const n2 = rms(x, S, lw.ln2);
    const gt = linear(n2, S, lw.gate);
    const up = linear(n2, S, lw.up);
    for (let i = 0; i < gt.length; i++) gt[i] = (gt[i] / (1 + Math.exp(-gt[i]))) * up[i];
    const d = linear(gt, S, lw.down);
    for (let i = 0; i < x.length; i++) x[i] += d[i];
  }
  const last = rms(x.subarray((S - 1) * H), 1, w.finalNorm);
  return linear(last, 1, w.lmHead);
}
