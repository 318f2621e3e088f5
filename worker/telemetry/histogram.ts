// A fixed-bucket histogram (counts per bucket + sum + count) and the bucket-interpolated quantile the dashboard shows.

export interface HistogramData {
  /** counts[i] observations ≤ bounds[i] and > bounds[i-1]; the last entry counts those above every bound (+Inf). */
  counts: number[];
  sum: number;
  count: number;
}

export function emptyHistogram(bounds: readonly number[]): HistogramData {
  return { counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
}

/** Index of the first bound ≥ value (binary search), bounds.length for the +Inf bucket. */
export function bucketIndex(bounds: readonly number[], value: number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (value <= bounds[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function observe(h: HistogramData, bounds: readonly number[], value: number): void {
  h.counts[bucketIndex(bounds, value)] += 1;
  h.sum += value;
  h.count += 1;
}

/**
 * The q-quantile estimated from bucket counts the way Prometheus' `histogram_quantile` does: find the bucket holding
 * rank q·count and interpolate linearly inside it (lower edge 0 for the first bucket). Observations in +Inf report the
 * highest finite bound. Returns null when empty. Accuracy is bounded by bucket width, not by the data.
 */
export function quantileFromBuckets(counts: readonly number[], bounds: readonly number[], q: number): number | null {
  let total = 0;
  for (const c of counts) total += c;
  if (total === 0) return null;
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < counts.length; i++) {
    const before = cumulative;
    cumulative += counts[i];
    if (cumulative >= rank && counts[i] > 0) {
      if (i === bounds.length) return bounds[bounds.length - 1];
      const lower = i === 0 ? 0 : bounds[i - 1];
      const upper = bounds[i];
      return lower + (upper - lower) * ((rank - before) / counts[i]);
    }
  }
  return bounds[bounds.length - 1];
}

/** Adds b's counts into a (same bounds). */
export function addCounts(a: number[], b: readonly number[]): void {
  for (let i = 0; i < a.length; i++) a[i] += b[i] ?? 0;
}
