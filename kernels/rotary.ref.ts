// Rotary embedding tables and the f64 reference, in the HF rotate_half convention (model/rope.ts, method.md §2.1):
// pair i = dims (i, i + d_h/2) of a head, angle_i = pos_{stream(i)} · inv_freq_i.
//   1-D:    inv_freq_i = θ^(−2i/d_h), one stream.
//   M-RoPE: the same inv_freq, pair i driven by stream t, h or w by mrope_section (Qwen2.5-VL), three streams.
//   vision: Qwen2.5-VL's 2-D rotary: inv_freq_j = θ^(−4j/d_h) for j < d_h/4; pair i < d_h/4 by the patch row (stream 0)
//           with inv_freq_i, pair i ≥ d_h/4 by the patch column (stream 1) with inv_freq_{i−d_h/4}; two streams.
// A rotated slice holds k pairs of a head: v[off + j] and v[off + j + k] form sub-pair j, which is original pair
// pairs[group][j] (all pairs for a full head; the MLA kept pairs for a partial-RoPE slice, model/mla/kept-pairs.ts).

export interface RotaryTables {
  /** d_h/2: pairs of a full head. */
  readonly half: number;
  /** Per pair. */
  readonly invFreq: Float64Array;
  /** Position stream of each pair. */
  readonly streams: Uint8Array;
  /** Rows of the position array ([streamCount × tokens], stream-major). */
  readonly streamCount: number;
}

export function rotaryTables1d(headDim: number, theta: number): RotaryTables {
  const half = headDim / 2;
  return { half, invFreq: Float64Array.from({ length: half }, (_, i) => Math.pow(theta, (-2 * i) / headDim)), streams: new Uint8Array(half), streamCount: 1 };
}

export function mropeTables(headDim: number, theta: number, section: readonly [number, number, number]): RotaryTables {
  const t = rotaryTables1d(headDim, theta);
  const streams = Uint8Array.from({ length: t.half }, (_, i) => (i < section[0] ? 0 : i < section[0] + section[1] ? 1 : 2));
  return { ...t, streams, streamCount: 3 };
}

export function visionRotaryTables(headDim: number, theta: number): RotaryTables {
  const half = headDim / 2;
  const quarter = headDim / 4;
  const invFreq = Float64Array.from({ length: half }, (_, i) => Math.pow(theta, (-4 * (i % quarter)) / headDim));
  const streams = Uint8Array.from({ length: half }, (_, i) => (i < quarter ? 0 : 1));
  return { half, invFreq, streams, streamCount: 2 };
}

/** Where the rotated slices sit in x [tokens, heads, headStride]. */
export interface RotaryLayout {
  readonly tokens: number;
  readonly heads: number;
  readonly headStride: number;
  /** Offset of the slice inside a head. */
  readonly offset: number;
  /** pairs[g] = the k original pair indices of group g; head h uses group ⌊h / (heads / groups)⌋. */
  readonly pairs: readonly (readonly number[])[];
}

/** Rotates x in f64 and returns a copy; `positions` is stream-major [streamCount × tokens]. */
export function rotaryRef(x: ArrayLike<number>, l: RotaryLayout, tables: RotaryTables, positions: ArrayLike<number>): Float64Array {
  const out = Float64Array.from(x as ArrayLike<number>);
  const k = l.pairs[0].length;
  const per = l.heads / l.pairs.length;
  for (let t = 0; t < l.tokens; t++) {
    for (let h = 0; h < l.heads; h++) {
      const base = (t * l.heads + h) * l.headStride + l.offset;
      const pairs = l.pairs[Math.floor(h / per)];
      for (let j = 0; j < k; j++) {
        const p = pairs[j];
        const ang = positions[tables.streams[p] * l.tokens + t] * tables.invFreq[p];
        const c = Math.cos(ang);
        const s = Math.sin(ang);
        const a = out[base + j];
        const b = out[base + j + k];
        out[base + j] = a * c - b * s;
        out[base + j + k] = b * c + a * s;
      }
    }
  }
  return out;
}
