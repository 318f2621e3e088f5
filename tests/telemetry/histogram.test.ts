// Bucket histogram and the dashboard's p50/p99: checked against hand-computed Prometheus histogram_quantile values and
// against exact nearest-rank quantiles of the raw data (error bounded by the width of the bucket the quantile falls in).
import { describe, expect, it } from "vitest";
import { LATENCY_BOUNDS_MS } from "../../worker/telemetry/buckets.ts";
import { bucketIndex, emptyHistogram, observe, quantileFromBuckets } from "../../worker/telemetry/histogram.ts";
import { exactQuantile } from "../../worker/telemetry/session-log.ts";

describe("bucketIndex", () => {
  const bounds = [1, 2, 4, 8];
  it("should put a value equal to a bound into that bound's bucket (le is inclusive)", () => {
    expect(bounds.map((b) => bucketIndex(bounds, b))).toEqual([0, 1, 2, 3]);
  });
  it("should put values above every bound into the +Inf bucket", () => {
    expect(bucketIndex(bounds, 8.0001)).toBe(4);
    expect(bucketIndex(bounds, 0)).toBe(0);
  });
});

describe("quantileFromBuckets", () => {
  // 0.5, 1 | 1.5 | 3, 3 | – | 10  →  counts [2, 1, 2, 0, 1]
  const bounds = [1, 2, 4, 8];
  const h = emptyHistogram(bounds);
  for (const v of [0.5, 1, 1.5, 3, 3, 10]) observe(h, bounds, v);

  it("should count, sum and bucket observations", () => {
    expect(h.counts).toEqual([2, 1, 2, 0, 1]);
    expect(h.count).toBe(6);
    expect(h.sum).toBe(19);
  });
  it("should interpolate like Prometheus histogram_quantile", () => {
    expect(quantileFromBuckets(h.counts, bounds, 0.5)).toBe(2); // rank 3 = top of (1, 2]
    expect(quantileFromBuckets(h.counts, bounds, 0.25)).toBe(0.75); // rank 1.5 in (0, 1]: 0 + 1 × 1.5/2
    expect(quantileFromBuckets(h.counts, bounds, 0.75)).toBe(3.5); // rank 4.5 in (2, 4]: 2 + 2 × 1.5/2
    expect(quantileFromBuckets(h.counts, bounds, 0.99)).toBe(8); // +Inf bucket → highest finite bound
  });
  it("should return null for an empty histogram", () => {
    expect(quantileFromBuckets([0, 0, 0, 0, 0], bounds, 0.5)).toBeNull();
  });
  it("should stay within one bucket of the exact quantile on latency-like data", () => {
    // Deterministic log-normal-ish latencies around 8 ms (LCG so the test needs no seed library).
    let x = 12345;
    const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const values = Array.from({ length: 5000 }, () => Math.exp(Math.log(8) + 0.6 * (rand() + rand() + rand() - 1.5)));
    const lh = emptyHistogram(LATENCY_BOUNDS_MS);
    for (const v of values) observe(lh, LATENCY_BOUNDS_MS, v);
    for (const q of [0.5, 0.99]) {
      const exact = exactQuantile(values, q)!;
      const estimate = quantileFromBuckets(lh.counts, LATENCY_BOUNDS_MS, q)!;
      const i = bucketIndex(LATENCY_BOUNDS_MS, exact);
      const width = LATENCY_BOUNDS_MS[i] - (i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1]);
      expect(Math.abs(estimate - exact)).toBeLessThanOrEqual(width);
    }
  });
});
