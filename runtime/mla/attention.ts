// MLA attention over a latent cache (docs/method.md §8). Per token and layer the cache holds k_rope (after RoPE, bias
// included), the latent c of the token's own modality, and the modality. Two read paths:
//  - "expanded": k_nope / v are materialised from c once per token (kept beside the latent) and attended as usual;
//  - "absorbed": nothing is materialised; each head scores q̃ᵐ·c + βᵐ and mixes ōᵐ, Pᵐ through W_uvᵐ (§8.3).

import { MlaError } from "../../format/errors.ts";
import type { TextModelConfig } from "../../checkpoint/config.ts";
import { RowBuffer, type AttentionBackend, type AttentionHook, type TokenBlock } from "../attention-backend.ts";
import { linear, softmaxInPlace } from "../ops.ts";
import { projectBlock } from "./block-projections.ts";
import type { SealedLayer, SlotSealing } from "./slot-sealing.ts";
import { spaceOf, type MlaAttentionWeights, type MlaModelWeights } from "./weights.ts";

export type MlaReadPath = "expanded" | "absorbed";

/** A latent cache's contents, as stored or restored (one entry per layer; rows = tokens). */
export interface MlaCacheSnapshot {
  readonly length: number;
  /** Modality per token (0 text, 1 image). */
  readonly modality: Uint8Array;
  readonly layers: readonly {
    /** [length × n_kv·r] rotated rope keys. */
    readonly kRope: Float32Array;
    /** [length × D_c] latents. */
    readonly latent: Float32Array;
  }[];
}

/** The rows a block just wrote into one layer's cache (views: changes made by the callback are what gets stored). */
export interface MlaCacheWrite {
  readonly layer: number;
  /** Cache index of the first row. */
  readonly start: number;
  readonly count: number;
  /** [count × n_kv·r] rotated rope keys. */
  readonly kRope: Float32Array;
  /** [count × D_c] latents. */
  readonly latent: Float32Array;
  readonly modality: Uint8Array;
}

export interface MlaBackendOptions {
  /**
   * Called after each block's k_rope and latents are written and before any query reads them, e.g. to fake-quantize
   * the cache in place (quantize → dequantize) so that evaluation sees exactly what a quantized store would return.
   */
  readonly onCacheWrite?: (write: MlaCacheWrite) => void;
  /**
   * Seals each C-token slot as soon as it is full: its rows are replaced by the codec's values before any query reads
   * them (called after `onCacheWrite`). Keeps the quantized blocks and raw rows the chunk upload needs.
   */
  readonly sealing?: SlotSealing;
}

export class MlaCacheError extends MlaError<"bad_snapshot"> {
  override readonly name = "MlaCacheError";
  constructor(code: "bad_snapshot", message: string) {
    super(code, message);
  }
}

interface LayerCache {
  kRope: RowBuffer;
  latent: RowBuffer;
  modality: Uint8Array;
  kNope: RowBuffer | null;
  v: RowBuffer | null;
  length: number;
}

export class MlaAttentionBackend implements AttentionBackend {
  private readonly cfg: TextModelConfig;
  private readonly caches: LayerCache[] = [];
  private scores = new Float64Array(256);
  private readonly r: number;
  private readonly dc: number;
  private readonly latentWidth: number;

  constructor(
    readonly model: MlaModelWeights,
    readonly path: MlaReadPath,
    private readonly options: MlaBackendOptions = {},
  ) {
    this.cfg = model.config;
    const { numKvHeads: nkv, headDim: dh } = this.cfg;
    this.r = model.ropeDims;
    this.dc = dh - this.r;
    this.latentWidth = model.dKv * nkv;
    for (let l = 0; l < this.cfg.numLayers; l++) {
      this.caches.push({
        kRope: new RowBuffer(nkv * this.r),
        latent: new RowBuffer(this.latentWidth),
        modality: new Uint8Array(64),
        kNope: path === "expanded" ? new RowBuffer(nkv * this.dc) : null,
        v: path === "expanded" ? new RowBuffer(nkv * dh) : null,
        length: 0,
      });
    }
  }

  get cacheBytes(): number {
    return this.caches.reduce((n, c) => n + c.kRope.bytes + c.latent.bytes + (c.kNope?.bytes ?? 0) + (c.v?.bytes ?? 0) + c.modality.byteLength, 0);
  }

  truncate(length: number): void {
    const sealing = this.options.sealing;
    if (sealing && length < sealing.lengthOf(0)) {
      // Rows of a slot the dropped tokens had sealed are raw again.
      const from = sealing.truncate(length);
      this.caches.forEach((c, l) => {
        if (length > from) {
          const raw = sealing.rawRows(l, from, length - from);
          c.latent.data.set(raw.latent, from * c.latent.width);
          c.kRope.data.set(raw.rope, from * c.kRope.width);
          if (this.path === "expanded") this.materialise(this.model.attention[l], c, from, length - from);
        }
      });
    }
    for (const c of this.caches) c.length = Math.min(c.length, length);
  }

  /** The sealing this backend writes through (null without one). */
  get sealing(): SlotSealing | null {
    return this.options.sealing ?? null;
  }

  /** Replaces a slot's rows by the values the codec reads back from its blocks. */
  private placeSealed(c: LayerCache, slotStart: number, rows: number, blocks: SealedLayer): void {
    const q = this.options.sealing!.quantizer!;
    const lat = q.dequantize(blocks.latent);
    const rope = q.dequantize(blocks.rope);
    c.latent.data.set(lat.subarray(0, rows * c.latent.width), slotStart * c.latent.width);
    c.kRope.data.set(rope.subarray(0, rows * c.kRope.width), slotStart * c.kRope.width);
  }

  /** The cached tokens of every layer (copies), e.g. to quantize and store them. */
  exportCache(): MlaCacheSnapshot {
    const n = this.caches[0].length;
    return {
      length: n,
      modality: this.caches[0].modality.slice(0, n),
      layers: this.caches.map((c) => ({
        kRope: c.kRope.data.slice(0, n * c.kRope.width),
        latent: c.latent.data.slice(0, n * c.latent.width),
      })),
    };
  }

  /** Replaces the cache by a snapshot (the expanded path re-materialises k_nope / v from the latents). */
  importCache(snap: MlaCacheSnapshot): void {
    const n = snap.length;
    if (snap.layers.length !== this.caches.length || snap.modality.length !== n) {
      throw new MlaCacheError("bad_snapshot", `snapshot has ${snap.layers.length} layers and ${snap.modality.length} modalities for ${n} tokens`);
    }
    snap.layers.forEach((s, l) => {
      const c = this.caches[l];
      if (s.kRope.length !== n * c.kRope.width || s.latent.length !== n * c.latent.width) {
        throw new MlaCacheError("bad_snapshot", `layer ${l}: expected ${n} × ${c.kRope.width} rope and ${n} × ${c.latent.width} latent values`);
      }
      c.length = 0;
      this.reserve(c, n);
      c.kRope.data.set(s.kRope);
      c.latent.data.set(s.latent);
      c.modality.set(snap.modality);
      if (this.path === "expanded") this.materialise(this.model.attention[l], c, 0, n);
      c.length = n;
    });
  }

  forwardLayer(layer: number, x: Float64Array, block: TokenBlock, out: Float64Array, hook?: AttentionHook): void {
    if (hook) hook({ layer, block, x: x.slice(), q: null, k: null });
    const { hiddenSize: d, numHeads: nh, numKvHeads: nkv, headDim: dh } = this.cfg;
    const w = this.model.attention[layer];
    const c = this.caches[layer];
    const n = block.count;
    const r = this.r;
    const dc = this.dc;
    const D = this.latentWidth;
    const qDim = nh * dh;
    const group = nh / nkv;

    const proj = projectBlock(this.model, layer, x, block);
    const q = proj.q;
    const start = c.length;
    this.reserve(c, start + n);
    c.kRope.data.set(proj.kRope, start * nkv * r);
    c.latent.data.set(proj.latent, start * D);
    c.modality.set(block.modality, start);
    if (this.options.onCacheWrite) {
      this.options.onCacheWrite({
        layer,
        start,
        count: n,
        kRope: c.kRope.data.subarray(start * nkv * r, (start + n) * nkv * r),
        latent: c.latent.data.subarray(start * D, (start + n) * D),
        modality: c.modality.subarray(start, start + n),
      });
    }
    const sealing = this.options.sealing;
    if (sealing) {
      // A slot is read through the codec as soon as it is full, by the very queries that filled it.
      const rw = nkv * r;
      const sealed = sealing.write(layer, start, c.latent.data.subarray(start * D, (start + n) * D), c.kRope.data.subarray(start * rw, (start + n) * rw), n);
      for (const s of sealed) this.placeSealed(c, s.slotStart, sealing.slotTokens, s);
    }
    if (this.path === "expanded") this.materialise(w, c, start, n);
    c.length = start + n;

    if (this.scores.length < start + n) this.scores = new Float64Array(2 * (start + n));
    const o = new Float64Array(n * qDim);
    if (this.path === "expanded") this.attendExpanded(c, q, n, start, o);
    else this.attendAbsorbed(w, c, q, n, start, o);
    linear(o, n, qDim, w.oProj, d, null, out);
  }

  private reserve(c: LayerCache, rows: number): void {
    const keep = c.length;
    c.kRope.ensure(rows, keep);
    c.latent.ensure(rows, keep);
    c.kNope?.ensure(rows, keep);
    c.v?.ensure(rows, keep);
    if (c.modality.length < rows) {
      const m = new Uint8Array(Math.max(rows, 2 * c.modality.length));
      m.set(c.modality.subarray(0, keep));
      c.modality = m;
    }
  }

  /** k_nope = W_ukᵐ c + b_ukᵐ and v = W_uvᵐ c + b_uvᵐ for cache rows [from, from + n). */
  private materialise(w: MlaAttentionWeights, c: LayerCache, from: number, n: number): void {
    const { numKvHeads: nkv, headDim: dh } = this.cfg;
    const D = this.latentWidth;
    const lat = new Float64Array(D);
    const kOut = new Float64Array(nkv * this.dc);
    const vOut = new Float64Array(nkv * dh);
    for (let t = from; t < from + n; t++) {
      const s = w.spaces[spaceOf(this.model.latentSpaces, c.modality[t])];
      for (let i = 0; i < D; i++) lat[i] = c.latent.data[t * D + i];
      linear(lat, 1, D, s.upK, nkv * this.dc, s.upKBias, kOut);
      linear(lat, 1, D, s.upV, nkv * dh, s.upVBias, vOut);
      c.kNope!.data.set(kOut, t * nkv * this.dc);
      c.v!.data.set(vOut, t * nkv * dh);
    }
  }

  private attendExpanded(c: LayerCache, q: Float64Array, n: number, start: number, o: Float64Array): void {
    const { numHeads: nh, numKvHeads: nkv, headDim: dh } = this.cfg;
    const r = this.r;
    const dc = this.dc;
    const qDim = nh * dh;
    const group = nh / nkv;
    const scale = 1 / Math.sqrt(dh);
    const KR = c.kRope.data;
    const KN = c.kNope!.data;
    const V = c.v!.data;
    const s = this.scores;
    for (let t = 0; t < n; t++) {
      const len = start + t + 1;
      for (let h = 0; h < nh; h++) {
        const g = Math.floor(h / group);
        const qr = t * qDim + h * r;
        const qn = t * qDim + nh * r + h * dc;
        for (let j = 0; j < len; j++) {
          let dot = 0;
          const kro = (j * nkv + g) * r;
          for (let e = 0; e < r; e++) dot += q[qr + e] * KR[kro + e];
          const kno = (j * nkv + g) * dc;
          for (let e = 0; e < dc; e++) dot += q[qn + e] * KN[kno + e];
          s[j] = dot * scale;
        }
        softmaxInPlace(s, len);
        const oo = t * qDim + h * dh;
        for (let j = 0; j < len; j++) {
          const p = s[j];
          const vo = (j * nkv + g) * dh;
          for (let e = 0; e < dh; e++) o[oo + e] += p * V[vo + e];
        }
      }
    }
  }

  private attendAbsorbed(w: MlaAttentionWeights, c: LayerCache, q: Float64Array, n: number, start: number, o: Float64Array): void {
    const { numHeads: nh, numKvHeads: nkv, headDim: dh } = this.cfg;
    const r = this.r;
    const dc = this.dc;
    const D = this.latentWidth;
    const qDim = nh * dh;
    const group = nh / nkv;
    const scale = 1 / Math.sqrt(dh);
    const spaces = w.spaces.length;
    const KR = c.kRope.data;
    const C = c.latent.data;
    const s = this.scores;
    const qAbs = new Float64Array(spaces * D); // q̃ᵐ = W_ukᵐ[g]ᵀ q_nope[h]
    const beta = new Float64Array(spaces); // βᵐ = q_nope[h] · b_ukᵐ[g]
    const oBar = new Float64Array(spaces * D); // ōᵐ = Σ_{m(j)=m} p_j c_j
    const mass = new Float64Array(spaces); // Pᵐ
    const spaceOfToken = (j: number) => (spaces === 1 ? 0 : spaceOf(2, c.modality[j]));
    for (let t = 0; t < n; t++) {
      const len = start + t + 1;
      for (let h = 0; h < nh; h++) {
        const g = Math.floor(h / group);
        const qr = t * qDim + h * r;
        const qn = t * qDim + nh * r + h * dc;
        qAbs.fill(0);
        for (let m = 0; m < spaces; m++) {
          const sp = w.spaces[m];
          const row0 = g * dc;
          for (let e = 0; e < dc; e++) {
            const qe = q[qn + e];
            const uo = (row0 + e) * D;
            for (let i = 0; i < D; i++) qAbs[m * D + i] += qe * sp.upK[uo + i];
          }
          let b = 0;
          if (sp.upKBias !== null) for (let e = 0; e < dc; e++) b += q[qn + e] * sp.upKBias[row0 + e];
          beta[m] = b;
        }
        for (let j = 0; j < len; j++) {
          const m = spaceOfToken(j);
          let dot = beta[m];
          const kro = (j * nkv + g) * r;
          for (let e = 0; e < r; e++) dot += q[qr + e] * KR[kro + e];
          const co = j * D;
          const qo = m * D;
          for (let i = 0; i < D; i++) dot += qAbs[qo + i] * C[co + i];
          s[j] = dot * scale;
        }
        softmaxInPlace(s, len);
        oBar.fill(0);
        mass.fill(0);
        for (let j = 0; j < len; j++) {
          const m = spaceOfToken(j);
          const p = s[j];
          mass[m] += p;
          const co = j * D;
          const ob = m * D;
          for (let i = 0; i < D; i++) oBar[ob + i] += p * C[co + i];
        }
        // o[h] = Σ_m W_uvᵐ[g] ōᵐ + Pᵐ b_uvᵐ[g]
        const oo = t * qDim + h * dh;
        for (let m = 0; m < spaces; m++) {
          const sp = w.spaces[m];
          for (let e = 0; e < dh; e++) {
            const row = g * dh + e;
            const uo = row * D;
            let acc = sp.upVBias === null ? 0 : mass[m] * sp.upVBias[row];
            for (let i = 0; i < D; i++) acc += sp.upV[uo + i] * oBar[m * D + i];
            o[oo + e] += acc;
          }
        }
      }
    }
  }
}
