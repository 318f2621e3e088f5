// Dashboard series: per-slot counts from events, gap filling that carries the KV gauges forward, and the columnar
// response (p50/p99 from buckets, rates as ratios, null where a ratio has no denominator).
import { describe, expect, it } from "vitest";
import { applyToSlot, emptySlot, fillSlots, reviveSlot, SLOT_MS, slotStart, toSeriesResponse } from "../../worker/telemetry/series.ts";

const T0 = slotStart(1_800_000_000_000);

describe("fillSlots", () => {
  it("should return nothing when nothing was recorded", () => {
    expect(fillSlots([], T0)).toEqual([]);
  });
  it("should fill gaps up to now, carrying the KV gauges of the last recorded slot", () => {
    const a = emptySlot(T0, 100, 450);
    const b = emptySlot(T0 + 3 * SLOT_MS, 300, 1350);
    const slots = fillSlots([b, a], T0 + 5 * SLOT_MS);
    expect(slots.map((s) => (s.t - T0) / SLOT_MS)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(slots.map((s) => s.kvBytesStored)).toEqual([100, 100, 100, 300, 300, 300]);
    expect(slots[1].requests).toBe(0);
  });
});

describe("applyToSlot + toSeriesResponse", () => {
  const slot = emptySlot(T0, 0, 0);
  for (const ms of [2, 4, 4, 9]) {
    applyToSlot(slot, { kind: "operation", op: "append", status: 201, durationMs: ms, bytesIn: 10, bytesOut: 1 });
  }
  applyToSlot(slot, { kind: "operation", op: "manifest", status: 409, durationMs: 5, bytesIn: 0, bytesOut: 0, errorCode: "turn_conflict" });
  applyToSlot(slot, { kind: "restore_served", sessionId: "s", requestedTokens: 100, hitTokens: 75, bytes: 1 });
  applyToSlot(slot, { kind: "dedupe_hit", sessionId: "s", chunks: 1, tokens: 64, bytesSaved: 9 });
  applyToSlot(slot, { kind: "chunks_stored", sessionId: "s", chunks: 3, tokens: 192, bytesStored: 9, bytesUncompressed: 40 });
  const r = toSeriesResponse([slot]);

  it("should count requests, errors and bytes", () => {
    expect(r.requests).toEqual([5]);
    expect(r.errors).toEqual([1]);
    expect(slot.bytesIn).toBe(40);
  });
  it("should give p50 from buckets: rank 2 of {2,4,4,9} falls in (3,4] at its top", () => {
    // LATENCY_BOUNDS_MS …, 2, 3, 4, 5, 6, 8, 10 …: 2 → (1.5,2], 4,4 → (3,4], 9 → (8,10]. Rank 2 = 1 + 1 of 2 in (3,4].
    expect(r.latencyP50Ms.append[0]).toBeCloseTo(3.5, 12);
    expect(r.latencyP99Ms.append[0]).toBeCloseTo(8 + 2 * ((0.99 * 4 - 3) / 1), 12);
    expect(r.latencyP50Ms.restore[0]).toBeNull();
  });
  it("should give rates as ratios and null without a denominator", () => {
    expect(r.restoreHitRate).toEqual([0.75]);
    expect(r.dedupeHitRate).toEqual([0.25]);
    expect(r.restoreReuseRate).toEqual([null]);
    expect(r.compressionRatio).toEqual([null]); // gauges are set by the MetricsObject, 0 here
  });
});

describe("reviveSlot", () => {
  it("should read a slot stored before the device-memory fields existed as zeros, so new reports add up", () => {
    const old = emptySlot(T0, 5, 9) as unknown as Record<string, unknown>;
    delete old.clientKvReports;
    delete old.clientKvBytes;
    delete old.clientKvUncompressedBytes;
    const slot = reviveSlot(JSON.stringify(old));
    expect(slot.kvBytesStored).toBe(5);
    applyToSlot(slot, { kind: "client_report", report: { sessionId: "s", memory: { kvCacheBytes: 1000, kvCacheTokens: 10, kvCacheUncompressedBytes: 9000 } } });
    applyToSlot(slot, { kind: "client_report", report: { sessionId: "s", memory: { kvCacheBytes: 3000, kvCacheTokens: 20, kvCacheUncompressedBytes: 18000 } } });
    applyToSlot(slot, { kind: "client_report", report: { sessionId: "s", ttftMs: 5 } }); // no memory: not in the mean
    const r = toSeriesResponse([slot]);
    expect(r.clientKvBytesMean).toEqual([2000]);
    expect(r.clientKvUncompressedBytesMean).toEqual([13500]);
    expect(toSeriesResponse([emptySlot(T0, 0, 0)]).clientKvBytesMean).toEqual([null]);
  });
});
