// The runtime's sampler: greedy = argmax (lowest id on ties); seeded sampling reproduces itself, top-k and top-p cut
// the candidate set exactly, and the empirical distribution follows softmax(logits / T).

import { describe, expect, it } from "vitest";
import { mulberry32, Sampler, SamplerError, topLogits } from "../../runtime/sampler.ts";

const logits = Float32Array.from([1, 3, 2, 3, -1, 0.5]);

describe("Sampler", () => {
  it("temperature 0 is argmax, lowest id on ties", () => {
    expect(new Sampler({ temperature: 0 }).next(logits)).toBe(1);
  });

  it("topLogits lists the k largest, descending, lower id first on ties", () => {
    expect(topLogits(logits, 3)).toEqual([[1, 3], [3, 3], [2, 2]]);
    expect(topLogits(logits, 10).length).toBe(6);
  });

  it("a seed reproduces a run; another seed gives another run", () => {
    const run = (seed: number) => {
      const s = new Sampler({ temperature: 1, seed });
      return Array.from({ length: 50 }, () => s.next(logits));
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it("top-k 2 only ever picks the two largest; top-p keeps the smallest prefix reaching p", () => {
    const k = new Sampler({ temperature: 5, topK: 2, seed: 1 });
    const seen = new Set(Array.from({ length: 400 }, () => k.next(logits)));
    expect([...seen].sort()).toEqual([1, 3]);
    // softmax at T=1: p(1) = p(3) ≈ 0.384 (0.768 together), p(2) ≈ 0.141 → top-p 0.7 keeps {1, 3}; 0.8 adds 2.
    const p = new Sampler({ temperature: 1, topP: 0.7, seed: 2 });
    expect(new Set(Array.from({ length: 400 }, () => p.next(logits)))).toEqual(new Set([1, 3]));
    const p2 = new Sampler({ temperature: 1, topP: 0.8, seed: 2 });
    expect(new Set(Array.from({ length: 400 }, () => p2.next(logits)))).toEqual(new Set([1, 3, 2]));
  });

  it("frequencies follow softmax(logits / T)", () => {
    const s = new Sampler({ temperature: 2, seed: 3 });
    const n = 20000;
    const counts = new Array(6).fill(0);
    for (let i = 0; i < n; i++) counts[s.next(logits)]++;
    const w = Array.from(logits, (x) => Math.exp(x / 2));
    const z = w.reduce((a, b) => a + b, 0);
    for (let i = 0; i < 6; i++) expect(Math.abs(counts[i] / n - w[i] / z)).toBeLessThan(0.015);
  });

  it("mulberry32 is uniform enough and in [0, 1)", () => {
    const r = mulberry32(42);
    let s = 0;
    for (let i = 0; i < 10000; i++) {
      const x = r();
      expect(x >= 0 && x < 1).toBe(true);
      s += x;
    }
    expect(Math.abs(s / 10000 - 0.5)).toBeLessThan(0.01);
  });

  it("bad parameters are SamplerErrors", () => {
    expect(() => new Sampler({ temperature: -1 })).toThrow(SamplerError);
    expect(() => new Sampler({ temperature: 1, topP: 0 })).toThrow(SamplerError);
    expect(() => new Sampler({ temperature: 1, topK: 1.5 })).toThrow(SamplerError);
  });
});
