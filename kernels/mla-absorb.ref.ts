// f64 references of the absorbed projections (mla-absorb.ts), written from docs/method.md §8.3 on dense f64 weights
// (a quantized weight is dequantized first with matmul-nbits.ref.ts): no shared code with the WGSL.

/** Dense weights of one latent space: W_uk [n_kv·d_c × D_c], W_uv [n_kv·d_h × D_c], optional biases. */
export interface AbsorbSpaceRef {
  readonly upK: ArrayLike<number>;
  readonly upKBias: ArrayLike<number> | null;
  readonly upV: ArrayLike<number>;
  readonly upVBias: ArrayLike<number> | null;
}

export interface AbsorbDims {
  readonly tokens: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly ropeDims: number;
  readonly headDim: number;
  readonly latentWidth: number;
}

/**
 * The attention's packed queries (types.ts packQueries layout) from rows y [tokens × yStride] holding q_rope (n_h·r)
 * then q_nope (n_h·d_c) at the start of each row.
 */
export function absorbQueriesRef(y: ArrayLike<number>, yStride: number, d: AbsorbDims, spaces: readonly AbsorbSpaceRef[]): Float64Array {
  const { tokens, heads, kvHeads, ropeDims: r, headDim, latentWidth: D } = d;
  const dc = headDim - r;
  const S = spaces.length;
  const stride = heads * r + S * heads * D + S * heads;
  const out = new Float64Array(tokens * stride);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor((h * kvHeads) / heads);
      for (let e = 0; e < r; e++) out[t * stride + h * r + e] = y[t * yStride + h * r + e];
      spaces.forEach((sp, m) => {
        let beta = 0;
        for (let i = 0; i < D; i++) {
          let acc = 0;
          for (let e = 0; e < dc; e++) acc += y[t * yStride + heads * r + h * dc + e] * sp.upK[(g * dc + e) * D + i];
          out[t * stride + heads * r + (m * heads + h) * D + i] = acc;
        }
        if (sp.upKBias) for (let e = 0; e < dc; e++) beta += y[t * yStride + heads * r + h * dc + e] * sp.upKBias[g * dc + e];
        out[t * stride + heads * r + S * heads * D + m * heads + h] = beta;
      });
    }
  }
  return out;
}

/** o [tokens × n_h·d_h] = Σ_m W_uvᵐ ōᵐ + Pᵐ b_uvᵐ from the attention's flat output ([t][m][h][D_c], then [t][m][h] masses). */
export function absorbOutputRef(att: ArrayLike<number>, d: AbsorbDims, spaces: readonly AbsorbSpaceRef[]): Float64Array {
  const { tokens, heads, kvHeads, headDim: dh, latentWidth: D } = d;
  const S = spaces.length;
  const massOffset = tokens * S * heads * D;
  const o = new Float64Array(tokens * heads * dh);
  for (let t = 0; t < tokens; t++) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor((h * kvHeads) / heads);
      spaces.forEach((sp, m) => {
        const th = (t * S + m) * heads + h;
        for (let e = 0; e < dh; e++) {
          const row = g * dh + e;
          let acc = sp.upVBias ? att[massOffset + th] * sp.upVBias[row] : 0;
          for (let i = 0; i < D; i++) acc += sp.upV[row * D + i] * att[th * D + i];
          o[(t * heads + h) * dh + e] += acc;
        }
      });
    }
  }
  return o;
}

/** Cache rows [latent of the token's space | k_rope] from y rows holding k_rope at ropeOffset and latents at latentOffset. */
export function latentRowsRef(
  y: ArrayLike<number>,
  modality: ArrayLike<number>,
  l: { tokens: number; yStride: number; ropeOffset: number; ropeWidth: number; latentOffset: number; latentWidth: number; spaces: 1 | 2 },
): Float64Array {
  const w = l.latentWidth + l.ropeWidth;
  const out = new Float64Array(l.tokens * w);
  for (let t = 0; t < l.tokens; t++) {
    const m = l.spaces === 2 && modality[t] === 1 ? 1 : 0;
    for (let c = 0; c < l.latentWidth; c++) out[t * w + c] = y[t * l.yStride + l.latentOffset + m * l.latentWidth + c];
    for (let c = 0; c < l.ropeWidth; c++) out[t * w + l.latentWidth + c] = y[t * l.yStride + l.ropeOffset + c];
  }
  return out;
}
