// Test-side codec: quantizes and packs blocks exactly as docs/codec.md specifies (asymmetric min-max, fp16 scale and
// zero rounded outward, round-half-even codes, little-endian packing), so kernel tests can build stored caches without
// depending on the production codec.
import type { Axis, QuantizedBlock } from "../../format/codec/types.ts";

type F16Rounding = "down" | "up" | "nearest";

/** fp16 bit pattern of a representable value. */
function encodeHalf(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  if (a < 2 ** -14) return sign | (a / 2 ** -24);
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  if (e + 15 >= 31) throw new RangeError(`${v} does not fit fp16`);
  return sign | ((e + 15) << 10) | (a / 2 ** (e - 10) - 1024);
}

/** Rounds a float32 value to fp16 (down = toward −∞, up = toward +∞, nearest = ties to even); returns the bits. */
export function toHalfBits(x: number, mode: F16Rounding): number {
  if (!Number.isFinite(x)) throw new RangeError(`non-finite ${x}`);
  const a = Math.abs(x);
  if (a === 0) return 0;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  const ulp = e < -14 ? 2 ** -24 : 2 ** (e - 10);
  const m = a / ulp;
  const away = (x > 0 && mode === "up") || (x < 0 && mode === "down");
  let mi: number;
  if (mode === "nearest") {
    const f = Math.floor(m);
    const d = m - f;
    mi = d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
  } else {
    mi = away ? Math.ceil(m) : Math.floor(m);
  }
  return encodeHalf(Math.sign(x) * mi * ulp);
}

export function halfBitsToNumber(bits: number): number {
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 31;
  const f = bits & 1023;
  return e === 0 ? s * f * 2 ** -24 : s * (1024 + f) * 2 ** (e - 25);
}

function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

/** Quantizes a row-major rows×cols block per docs/codec.md. */
export function quantizeBlock(x: Float32Array, rows: number, cols: number, bits: 8 | 4 | 2, group: number, axis: Axis): QuantizedBlock {
  const fr = Math.fround;
  const extent = axis === "token" ? cols : rows;
  const g = Math.min(group, extent);
  if (extent % g !== 0) throw new RangeError(`extent ${extent} is not a multiple of group ${g}`);
  const Q = 2 ** bits - 1;
  const groups = (rows * cols) / g;
  const scales = new Uint16Array(groups);
  const zeros = new Uint16Array(groups);
  const codes = new Uint8Array(Math.ceil((rows * cols * bits) / 8));
  const members = (gi: number): number[] => {
    const idx: number[] = [];
    if (axis === "token") {
      const perRow = cols / g;
      const row = Math.floor(gi / perRow);
      const c0 = (gi % perRow) * g;
      for (let k = 0; k < g; k++) idx.push(row * cols + c0 + k);
    } else {
      const k0 = Math.floor(gi / cols) * g;
      const col = gi % cols;
      for (let k = 0; k < g; k++) idx.push((k0 + k) * cols + col);
    }
    return idx;
  };
  for (let gi = 0; gi < groups; gi++) {
    const idx = members(gi);
    let mn = Infinity;
    let mx = -Infinity;
    for (const e of idx) {
      mn = Math.min(mn, x[e]);
      mx = Math.max(mx, x[e]);
    }
    const zb = toHalfBits(mn, "down");
    const z = halfBitsToNumber(zb);
    const sb = toHalfBits(fr(fr(mx - z) / Q), "up");
    const s = halfBitsToNumber(sb);
    zeros[gi] = zb;
    scales[gi] = sb;
    const inv = s === 0 ? 0 : fr(1 / s);
    for (const e of idx) {
      const q = s === 0 ? 0 : Math.min(Q, Math.max(0, roundHalfEven(fr(fr(x[e] - z) * inv))));
      codes[(e * bits) >> 3] |= q << ((e * bits) & 7);
    }
  }
  return { rows, cols, bits, group: g, axis, codes, scales, zeros };
}

/** fp16 block (nearest-even), codes = little-endian fp16 bytes. */
export function fp16Block(x: Float32Array, rows: number, cols: number): QuantizedBlock {
  const codes = new Uint8Array(rows * cols * 2);
  for (let e = 0; e < rows * cols; e++) {
    const b = toHalfBits(x[e], "nearest");
    codes[2 * e] = b & 255;
    codes[2 * e + 1] = b >> 8;
  }
  return { rows, cols, bits: 16, group: 0, axis: "token", codes, scales: new Uint16Array(0), zeros: new Uint16Array(0) };
}
