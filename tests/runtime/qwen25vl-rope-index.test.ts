// M-RoPE positions (model/rope-index.ts) against a line-by-line port of transformers' Qwen2.5-VL get_rope_index
// (images: t index 0, h/w offsets from the text position before the image, text resumes at max + 1): the fixture
// README's hand-worked example, random prompts with any number of images, and the same prompts cut into turns (each
// turn starting from the previous turn's next position, as a session or a restored one does).

import { describe, expect, it } from "vitest";
import { ropeIndexPositions, type ImageGrid } from "../../runtime/rope-index.ts";
import { mulberry32 } from "../../runtime/sampler.ts";

const VS = 151652;
const IMG = 151655;
const VE = 151653;

/** transformers' get_rope_index for one sequence of images (grids in patches [t, h, w], merge 2). */
function hfGetRopeIndex(ids: number[], grids: [number, number, number][]): { pos: number[][]; delta: number } {
  const parts: number[][][] = [];
  const maxOf = () => Math.max(...parts[parts.length - 1].flat());
  let st = 0;
  let imageNums = 0;
  for (let i = 0; i + 1 < ids.length; i++) if (ids[i] === VS && ids[i + 1] === IMG) imageNums++;
  for (let k = 0; k < imageNums; k++) {
    const ed = ids.indexOf(IMG, st);
    const [t, h, w] = [grids[k][0], grids[k][1] / 2, grids[k][2] / 2];
    const textLen = ed - st;
    const stIdx = parts.length > 0 ? maxOf() + 1 : 0;
    parts.push([0, 1, 2].map(() => Array.from({ length: textLen }, (_, j) => j + stIdx)));
    const tI: number[] = [];
    const hI: number[] = [];
    const wI: number[] = [];
    for (let a = 0; a < t; a++) for (let b = 0; b < h; b++) for (let c = 0; c < w; c++) {
      tI.push(0 + textLen + stIdx); // second_per_grid_t = 0 for images
      hI.push(b + textLen + stIdx);
      wI.push(c + textLen + stIdx);
    }
    parts.push([tI, hI, wI]);
    st = ed + t * h * w;
  }
  if (st < ids.length) {
    const stIdx = parts.length > 0 ? maxOf() + 1 : 0;
    parts.push([0, 1, 2].map(() => Array.from({ length: ids.length - st }, (_, j) => j + stIdx)));
  }
  const pos = [0, 1, 2].map((r) => parts.flatMap((p) => p[r]));
  return { pos, delta: Math.max(...pos.flat()) + 1 - ids.length };
}

function randomPrompt(rand: () => number): { ids: number[]; grids: [number, number, number][] } {
  const ids: number[] = [];
  const grids: [number, number, number][] = [];
  const images = Math.floor(rand() * 4);
  const text = () => {
    const n = 1 + Math.floor(rand() * 6);
    for (let i = 0; i < n; i++) ids.push(100 + Math.floor(rand() * 1000));
  };
  text();
  for (let k = 0; k < images; k++) {
    const g: [number, number, number] = [1, 2 * (1 + Math.floor(rand() * 6)), 2 * (1 + Math.floor(rand() * 9))];
    grids.push(g);
    ids.push(VS, ...new Array<number>((g[1] * g[2]) / 4).fill(IMG), VE);
    text();
  }
  return { ids, grids };
}

const llm = (g: [number, number, number]): ImageGrid => ({ rows: g[1] / 2, cols: g[2] / 2 });

function rows(p: Int32Array, n: number): number[][] {
  return [0, 1, 2].map((r) => Array.from(p.subarray(r * n, (r + 1) * n)));
}

describe("M-RoPE positions = get_rope_index", () => {
  it("the fixture README's hand-worked example [T T <vs> 6×<img> <ve> T T], grid (1, 4, 6)", () => {
    const ids = [1, 2, VS, ...new Array<number>(6).fill(IMG), VE, 3, 4];
    const r = ropeIndexPositions(ids, 0, IMG, [{ rows: 2, cols: 3 }]);
    expect(rows(r.positions, ids.length)).toEqual([
      [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7, 8],
      [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7, 8],
      [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8],
    ]);
    expect(r.next - ids.length).toBe(-3);
    expect(hfGetRopeIndex(ids, [[1, 4, 6]]).delta).toBe(-3);
  });

  it("random prompts with 0–3 images: positions and rope delta equal the port; cut into turns, the same", () => {
    const rand = mulberry32(17);
    for (let trial = 0; trial < 300; trial++) {
      const { ids, grids } = randomPrompt(rand);
      const ref = hfGetRopeIndex(ids, grids);
      const whole = ropeIndexPositions(ids, 0, IMG, grids.map(llm));
      expect(rows(whole.positions, ids.length)).toEqual(ref.pos);
      expect(whole.next - ids.length).toBe(ref.delta);
      // cut at a random point outside an image run: turn 2 starts at turn 1's next position
      const cuts = ids.map((_, i) => i).filter((i) => i > 0 && !(ids[i] === IMG && ids[i - 1] === IMG));
      if (cuts.length === 0) continue;
      const cut = cuts[Math.floor(rand() * cuts.length)];
      const a = ids.slice(0, cut);
      const b = ids.slice(cut);
      const imagesInA = a.filter((t, i) => t === IMG && (i === 0 || a[i - 1] !== IMG)).length;
      const ra = ropeIndexPositions(a, 0, IMG, grids.slice(0, imagesInA).map(llm));
      const rb = ropeIndexPositions(b, ra.next, IMG, grids.slice(imagesInA).map(llm));
      const joined = [0, 1, 2].map((r) => [...rows(ra.positions, a.length)[r], ...rows(rb.positions, b.length)[r]]);
      expect(joined).toEqual(ref.pos);
      expect(rb.next - ids.length).toBe(ref.delta);
    }
  });
});
