// model/ops.ts numerics against closed forms: the f64 softmax at logits beyond exp's range (issue 21: the max
// subtraction is what keeps it finite), and erf against known values.
import { describe, expect, it } from "vitest";
import { erf, softmaxInPlace } from "../../runtime/ops.ts";

describe("softmaxInPlace", () => {
  it("should stay exact at logits far beyond f64 exp's range (≈ 709.8), high and low", () => {
    // e^{s − max} for s = (1000, 999, 998) and (−1000, −1001, −1002): both are softmax(0, −1, −2).
    const z = 1 + Math.exp(-1) + Math.exp(-2);
    const expected = [1 / z, Math.exp(-1) / z, Math.exp(-2) / z];
    for (const shift of [1000, -1000, 0]) {
      const s = Float64Array.from([shift, shift - 1, shift - 2, 12345]);
      softmaxInPlace(s, 3);
      for (let i = 0; i < 3; i++) expect(s[i]).toBeCloseTo(expected[i], 14);
      expect(s[3]).toBe(12345); // only the first n entries
    }
  });
});

describe("erf", () => {
  it("should match known values within the fit's 1.2e-7", () => {
    for (const [x, v] of [[0, 0], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [-2, -0.9953222650189527]] as const) {
      expect(Math.abs(erf(x) - v)).toBeLessThan(1.2e-7);
    }
  });
});
