// Time series for the dashboard: one slot per SLOT_MS holding that slot's latency buckets and counts plus the KV gauges
// at its end; RETAINED_SLOTS of them are kept (a ring in SQLite). p50/p99 are interpolated from the slot's buckets.
import { LATENCY_BOUNDS_MS, TTFT_BOUNDS_MS } from "./buckets.ts";
import { CHARTED_OPERATIONS, type TelemetryEvent } from "./events.ts";
import { emptyHistogram, observe, quantileFromBuckets } from "./histogram.ts";

/** Slot width: 10 s, the usual Prometheus scrape interval, so the dashboard and a scraper see the same resolution. */
export const SLOT_MS = 10_000;
/** One hour of slots. */
export const RETAINED_SLOTS = 360;

type ChartedOperation = (typeof CHARTED_OPERATIONS)[number];

export interface SeriesSlot {
  /** Slot start, ms since the epoch. */
  t: number;
  latency: Record<ChartedOperation, number[]>;
  ttft: number[];
  requests: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
  /** KV gauges after the slot's last event. */
  kvBytesStored: number;
  kvUncompressedBytesStored: number;
  /** Distinct sessions with an event in this slot. */
  sessions: number;
  restoreRequestedTokens: number;
  restoreHitTokens: number;
  clientRestoredTokens: number;
  clientReusedTokens: number;
  clientRestores: number;
  restoresRecomputed: number;
  /** Client turn reports with device memory, and the sums of their device KV bytes and bf16 equivalents. */
  clientKvReports: number;
  clientKvBytes: number;
  clientKvUncompressedBytes: number;
  dedupeQueries: number;
  dedupeHits: number;
  forks: number;
  evictions: number;
}

export const slotStart = (nowMs: number): number => Math.floor(nowMs / SLOT_MS) * SLOT_MS;

export function emptySlot(t: number, kvBytesStored: number, kvUncompressedBytesStored: number): SeriesSlot {
  const latency = {} as Record<ChartedOperation, number[]>;
  for (const op of CHARTED_OPERATIONS) latency[op] = emptyHistogram(LATENCY_BOUNDS_MS).counts;
  return {
    t,
    latency,
    ttft: emptyHistogram(TTFT_BOUNDS_MS).counts,
    requests: 0,
    errors: 0,
    bytesIn: 0,
    bytesOut: 0,
    kvBytesStored,
    kvUncompressedBytesStored,
    sessions: 0,
    restoreRequestedTokens: 0,
    restoreHitTokens: 0,
    clientRestoredTokens: 0,
    clientReusedTokens: 0,
    clientRestores: 0,
    restoresRecomputed: 0,
    clientKvReports: 0,
    clientKvBytes: 0,
    clientKvUncompressedBytes: 0,
    dedupeQueries: 0,
    dedupeHits: 0,
    forks: 0,
    evictions: 0,
  };
}

/** A slot read back from storage; fields added since it was written start at 0. */
export function reviveSlot(json: string): SeriesSlot {
  const stored = JSON.parse(json) as Partial<SeriesSlot> & { t: number };
  return { ...emptySlot(stored.t, 0, 0), ...stored };
}

const isCharted = (op: string): op is ChartedOperation => (CHARTED_OPERATIONS as readonly string[]).includes(op);

/** Adds one event's per-slot counts (KV gauges are set by the caller from the aggregate). */
export function applyToSlot(slot: SeriesSlot, e: TelemetryEvent): void {
  switch (e.kind) {
    case "operation":
      slot.requests += 1;
      if (e.status >= 400) slot.errors += 1;
      slot.bytesIn += e.bytesIn;
      slot.bytesOut += e.bytesOut;
      if (isCharted(e.op)) {
        const h = { counts: slot.latency[e.op], sum: 0, count: 0 };
        observe(h, LATENCY_BOUNDS_MS, e.durationMs);
      }
      return;
    case "chunks_stored":
      slot.dedupeQueries += e.chunks;
      return;
    case "dedupe_hit":
      slot.dedupeQueries += e.chunks;
      slot.dedupeHits += e.chunks;
      return;
    case "fork":
      slot.forks += 1;
      return;
    case "eviction":
      slot.evictions += e.sessions;
      return;
    case "restore_served":
      slot.restoreRequestedTokens += e.requestedTokens;
      slot.restoreHitTokens += e.hitTokens;
      if (e.errorCode !== undefined) slot.errors += 1;
      return;
    case "client_report": {
      const r = e.report;
      if (r.ttftMs !== undefined) observe({ counts: slot.ttft, sum: 0, count: 0 }, TTFT_BOUNDS_MS, r.ttftMs);
      if (r.restore !== undefined) {
        slot.clientRestores += 1;
        slot.clientRestoredTokens += r.restore.restoredTokens;
        slot.clientReusedTokens += r.restore.reusedTokens;
        if (r.restore.recomputedTokens > 0) slot.restoresRecomputed += 1;
      }
      if (r.memory !== undefined) {
        slot.clientKvReports += 1;
        slot.clientKvBytes += r.memory.kvCacheBytes;
        slot.clientKvUncompressedBytes += r.memory.kvCacheUncompressedBytes;
      }
      return;
    }
    case "session_created":
      return;
  }
}

/**
 * One slot per SLOT_MS from the earliest recorded slot to `nowSlot` (inclusive); missing slots are empty and carry the
 * previous slot's KV gauges forward (the gauges did not change while nothing happened). Empty when nothing is recorded.
 */
export function fillSlots(recorded: readonly SeriesSlot[], nowSlot: number): SeriesSlot[] {
  if (recorded.length === 0) return [];
  const byStart = new Map(recorded.map((s) => [s.t, s] as const));
  const slots: SeriesSlot[] = [];
  let previous: SeriesSlot | undefined;
  const first = Math.min(...byStart.keys());
  const last = Math.max(nowSlot, ...byStart.keys());
  for (let t = first; t <= last; t += SLOT_MS) {
    const slot = byStart.get(t) ?? emptySlot(t, previous?.kvBytesStored ?? 0, previous?.kvUncompressedBytesStored ?? 0);
    slots.push(slot);
    previous = slot;
  }
  return slots;
}

/** Columnar series for uPlot: `t` in seconds, every other array aligned with it; null where undefined (no data). */
export interface SeriesResponse {
  readonly slotSeconds: number;
  readonly t: number[];
  readonly latencyP50Ms: Record<ChartedOperation, (number | null)[]>;
  readonly latencyP99Ms: Record<ChartedOperation, (number | null)[]>;
  readonly ttftP50Ms: (number | null)[];
  readonly kvBytesStored: number[];
  readonly kvUncompressedBytesStored: number[];
  readonly compressionRatio: (number | null)[];
  readonly sessions: number[];
  /** Server side: hit tokens over requested tokens. */
  readonly restoreHitRate: (number | null)[];
  /** Client side: reused tokens over restored tokens (1 − recompute rate). */
  readonly restoreReuseRate: (number | null)[];
  readonly restoresRecomputed: number[];
  /** Client device KV cache per turn report, mean over the slot's reports: allocated bytes, and the bf16 equivalent. */
  readonly clientKvBytesMean: (number | null)[];
  readonly clientKvUncompressedBytesMean: (number | null)[];
  readonly requests: number[];
  readonly errors: number[];
  readonly dedupeHitRate: (number | null)[];
}

const ratio = (num: number, den: number): number | null => (den > 0 ? num / den : null);

/** Slots in ascending time order → dashboard series. */
export function toSeriesResponse(slots: readonly SeriesSlot[]): SeriesResponse {
  const perOp = (q: number): Record<ChartedOperation, (number | null)[]> => {
    const out = {} as Record<ChartedOperation, (number | null)[]>;
    for (const op of CHARTED_OPERATIONS) out[op] = slots.map((s) => quantileFromBuckets(s.latency[op], LATENCY_BOUNDS_MS, q));
    return out;
  };
  return {
    slotSeconds: SLOT_MS / 1000,
    t: slots.map((s) => s.t / 1000),
    latencyP50Ms: perOp(0.5),
    latencyP99Ms: perOp(0.99),
    ttftP50Ms: slots.map((s) => quantileFromBuckets(s.ttft, TTFT_BOUNDS_MS, 0.5)),
    kvBytesStored: slots.map((s) => s.kvBytesStored),
    kvUncompressedBytesStored: slots.map((s) => s.kvUncompressedBytesStored),
    compressionRatio: slots.map((s) => ratio(s.kvUncompressedBytesStored, s.kvBytesStored)),
    sessions: slots.map((s) => s.sessions),
    restoreHitRate: slots.map((s) => ratio(s.restoreHitTokens, s.restoreRequestedTokens)),
    restoreReuseRate: slots.map((s) => ratio(s.clientReusedTokens, s.clientRestoredTokens)),
    restoresRecomputed: slots.map((s) => s.restoresRecomputed),
    clientKvBytesMean: slots.map((s) => ratio(s.clientKvBytes, s.clientKvReports)),
    clientKvUncompressedBytesMean: slots.map((s) => ratio(s.clientKvUncompressedBytes, s.clientKvReports)),
    requests: slots.map((s) => s.requests),
    errors: slots.map((s) => s.errors),
    dedupeHitRate: slots.map((s) => ratio(s.dedupeHits, s.dedupeQueries)),
  };
}
