// Cumulative metric state (counters, histograms, KV gauges) and how each event moves it. Plain JSON so the
// MetricsObject can persist it in one SQLite row; label sets are capped per family so memory stays bounded.
import { COUNTERS, HISTOGRAMS, MAX_SERIES_PER_FAMILY, OVERFLOW_LABEL, type CounterKey, type HistogramKey } from "./catalogue.ts";
import type { TelemetryEvent } from "./events.ts";
import { emptyHistogram, observe, type HistogramData } from "./histogram.ts";

/** Label values in the family's labelNames order, JSON-encoded: the key of one series. */
export type SeriesKey = string;

export interface AggregateState {
  counters: Record<string, Record<SeriesKey, number>>;
  histograms: Record<string, Record<SeriesKey, HistogramData>>;
  kvBytesStored: number;
  kvUncompressedBytesStored: number;
}

export function emptyAggregate(): AggregateState {
  return { counters: {}, histograms: {}, kvBytesStored: 0, kvUncompressedBytesStored: 0 };
}

export const seriesKey = (labels: readonly string[]): SeriesKey => JSON.stringify(labels);
export const seriesLabels = (key: SeriesKey): string[] => JSON.parse(key) as string[];

/** The series to write into: the named one, or the family's overflow series once the cap is reached. */
function slotFor<T>(family: Record<SeriesKey, T>, labels: readonly string[], onOverflow: () => void): SeriesKey {
  const key = seriesKey(labels);
  if (key in family || Object.keys(family).length < MAX_SERIES_PER_FAMILY - 1) return key;
  onOverflow();
  return seriesKey(labels.map(() => OVERFLOW_LABEL));
}

export function addCounter(s: AggregateState, key: CounterKey, value: number, labels: readonly string[] = []): void {
  if (value === 0) return;
  const family = (s.counters[COUNTERS[key].name] ??= {});
  const k = slotFor(family, labels, () => addCounter(s, "droppedSeries", 1));
  family[k] = (family[k] ?? 0) + value;
}

/** `value` in the family's recorded unit: ms for durations, bytes for sizes. */
export function observeHistogram(s: AggregateState, key: HistogramKey, value: number, labels: readonly string[] = []): void {
  const def = HISTOGRAMS[key];
  const family = (s.histograms[def.name] ??= {});
  const k = slotFor(family, labels, () => addCounter(s, "droppedSeries", 1));
  observe((family[k] ??= emptyHistogram(def.bounds)), def.bounds, value);
}

/** Error code label: the response's own code when the store set one, else the HTTP status as `http_<status>`. */
export const errorCodeOf = (status: number, errorCode: string | undefined): string => errorCode ?? `http_${status}`;

/** Applies one event to the cumulative state. */
export function applyToAggregate(s: AggregateState, e: TelemetryEvent): void {
  switch (e.kind) {
    case "operation": {
      addCounter(s, "requests", 1, [e.op, String(e.status)]);
      if (e.status >= 400) addCounter(s, "requestErrors", 1, [e.op, errorCodeOf(e.status, e.errorCode)]);
      addCounter(s, "requestBytes", e.bytesIn, [e.op]);
      addCounter(s, "responseBytes", e.bytesOut, [e.op]);
      observeHistogram(s, "requestDuration", e.durationMs, [e.op]);
      return;
    }
    case "chunks_stored": {
      addCounter(s, "chunksWritten", e.chunks);
      addCounter(s, "dedupeQueries", e.chunks);
      addCounter(s, "dedupeQueryTokens", e.tokens);
      addCounter(s, "kvBytesWritten", e.bytesStored);
      addCounter(s, "kvUncompressedBytesWritten", e.bytesUncompressed);
      s.kvBytesStored += e.bytesStored;
      s.kvUncompressedBytesStored += e.bytesUncompressed;
      return;
    }
    case "dedupe_hit": {
      addCounter(s, "dedupeQueries", e.chunks);
      addCounter(s, "dedupeHits", e.chunks);
      addCounter(s, "dedupeQueryTokens", e.tokens);
      addCounter(s, "dedupeHitTokens", e.tokens);
      addCounter(s, "dedupeBytesSaved", e.bytesSaved);
      return;
    }
    case "session_created":
      addCounter(s, "sessionsCreated", 1);
      return;
    case "fork":
      addCounter(s, "forks", 1);
      return;
    case "eviction": {
      addCounter(s, "evictions", e.sessions, [e.reason]);
      addCounter(s, "evictedChunks", e.chunks, [e.reason]);
      addCounter(s, "kvBytesFreed", e.bytesStored, [e.reason]);
      // Clamped: a freed-bytes report for chunks written before telemetry existed must not drive the gauge negative.
      s.kvBytesStored = Math.max(0, s.kvBytesStored - e.bytesStored);
      s.kvUncompressedBytesStored = Math.max(0, s.kvUncompressedBytesStored - e.bytesUncompressed);
      return;
    }
    case "restore_served":
      addCounter(s, "restoreRequestedTokens", e.requestedTokens);
      addCounter(s, "restoreHitTokens", e.hitTokens);
      addCounter(s, "restoresServed", 1, [e.errorCode === undefined ? "complete" : "failed"]);
      addCounter(s, "restoreBytes", e.bytes);
      // The response was a 200, so the request middleware saw no error: a mid-stream failure is counted here.
      if (e.errorCode !== undefined) addCounter(s, "requestErrors", 1, ["restore", e.errorCode]);
      return;
    case "client_report": {
      const r = e.report;
      addCounter(s, "clientReports", 1);
      if (r.ttftMs !== undefined) observeHistogram(s, "timeToFirstToken", r.ttftMs);
      if (r.tpotMs !== undefined) observeHistogram(s, "timePerOutputToken", r.tpotMs);
      if (r.inputTokens !== undefined) addCounter(s, "promptTokens", r.inputTokens);
      if (r.outputTokens !== undefined) addCounter(s, "generationTokens", r.outputTokens);
      const restore = r.restore;
      if (restore !== undefined) {
        addCounter(s, "clientRestores", 1);
        addCounter(s, "clientRestoredTokens", restore.restoredTokens);
        addCounter(s, "promptTokensCached", restore.reusedTokens);
        addCounter(s, "restoreRecomputedTokens", restore.recomputedTokens);
        if (restore.recomputedTokens > 0) addCounter(s, "restoresRecomputed", 1);
        observeHistogram(s, "restorePhase", restore.fetchMs, ["fetch"]);
        observeHistogram(s, "restorePhase", restore.decodeMs, ["decode"]);
        observeHistogram(s, "restorePhase", restore.uploadMs, ["upload"]);
      }
      if (r.memory !== undefined) {
        observeHistogram(s, "clientKvCacheBytes", r.memory.kvCacheBytes);
        observeHistogram(s, "clientKvCacheUncompressedBytes", r.memory.kvCacheUncompressedBytes);
      }
      return;
    }
  }
}

/** Value of a counter series (0 when absent). */
export function counterValue(s: AggregateState, key: CounterKey, labels: readonly string[] = []): number {
  return s.counters[COUNTERS[key].name]?.[seriesKey(labels)] ?? 0;
}
