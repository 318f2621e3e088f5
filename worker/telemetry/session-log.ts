// The per-session view: which log entries an event leaves under which session, and the summary the dashboard shows
// for one session (exact nearest-rank quantiles here: a session's raw durations are kept, unlike the global buckets).
import type { TelemetryEvent } from "./events.ts";

/** One recorded thing that happened to a session. */
export interface SessionLogEntry {
  /** ms since the epoch (when the MetricsObject received it). */
  readonly t: number;
  readonly kind: TelemetryEvent["kind"];
  readonly op?: string;
  readonly status?: number;
  readonly errorCode?: string;
  readonly durationMs?: number;
  readonly bytes?: number;
  readonly tokens?: number;
  readonly chunks?: number;
  readonly bytesUncompressed?: number;
  /** Client reports: restored tokens reused / recomputed. */
  readonly reusedTokens?: number;
  readonly recomputedTokens?: number;
  /** Short human-readable detail, e.g. "ttft 120 ms, tpot 25 ms" or "forked to abc". */
  readonly detail?: string;
}

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

/** `GET /dashboard/api/sessions/:id`. */
export interface SessionView {
  readonly sessionId: string;
  /** Oldest first, at most the requested limit (the newest ones). */
  readonly entries: SessionLogEntry[];
  readonly latency: Record<string, LatencySummary>;
  readonly bytesStored: number;
  readonly bytesUncompressed: number;
  readonly dedupeHitChunks: number;
  readonly restoredTokens: number;
  readonly recomputedTokens: number;
  /** The newest client report's device KV cache bytes and their bf16 equivalent (null when no report carried them). */
  readonly deviceKvBytes: number | null;
  readonly deviceKvUncompressedBytes: number | null;
}

/**
 * Failed requests not attributed to their session id: the id is unproven (401/403) or does not exist (404), and logging
 * them would let anyone fill the session log and the active-sessions gauge with made-up ids.
 */
const UNATTRIBUTED_STATUSES: ReadonlySet<number> = new Set([401, 403, 404]);

const round = (v: number): number => Math.round(v * 1000) / 1000;

/** Entries an event contributes, keyed by session id (a fork logs under parent and child). */
export function sessionEntriesOf(e: TelemetryEvent, t: number): [string, SessionLogEntry][] {
  switch (e.kind) {
    case "operation":
      if (e.sessionId === undefined || UNATTRIBUTED_STATUSES.has(e.status)) return [];
      return [
        [
          e.sessionId,
          {
            t,
            kind: e.kind,
            op: e.op,
            status: e.status,
            durationMs: round(e.durationMs),
            bytes: e.bytesIn + e.bytesOut,
            ...(e.errorCode !== undefined ? { errorCode: e.errorCode } : {}),
          },
        ],
      ];
    case "chunks_stored":
      return [[e.sessionId, { t, kind: e.kind, bytes: e.bytesStored, bytesUncompressed: e.bytesUncompressed, tokens: e.tokens, chunks: e.chunks }]];
    case "dedupe_hit":
      return [[e.sessionId, { t, kind: e.kind, bytes: e.bytesSaved, tokens: e.tokens, chunks: e.chunks, detail: "chunks already stored" }]];
    case "session_created":
      return [[e.sessionId, { t, kind: e.kind }]];
    case "fork":
      return [
        [e.sessionId, { t, kind: e.kind, detail: `forked to ${e.childSessionId}` }],
        [e.childSessionId, { t, kind: e.kind, detail: `forked from ${e.sessionId}` }],
      ];
    case "eviction":
      if (e.sessionId === undefined) return [];
      return [[e.sessionId, { t, kind: e.kind, bytes: e.bytesStored, bytesUncompressed: e.bytesUncompressed, chunks: e.chunks, detail: e.reason }]];
    case "restore_served":
      return [[e.sessionId, { t, kind: e.kind, bytes: e.bytes, tokens: e.hitTokens, detail: `${e.hitTokens}/${e.requestedTokens} tokens found` }]];
    case "client_report": {
      const r = e.report;
      const parts: string[] = [];
      if (r.ttftMs !== undefined) parts.push(`ttft ${round(r.ttftMs)} ms`);
      if (r.tpotMs !== undefined) parts.push(`tpot ${round(r.tpotMs)} ms`);
      if (r.restore !== undefined) {
        const x = r.restore;
        parts.push(`restore ${x.restoredTokens} tok (reused ${x.reusedTokens}, recomputed ${x.recomputedTokens}); fetch ${round(x.fetchMs)} / decode ${round(x.decodeMs)} / upload ${round(x.uploadMs)} ms`);
      }
      if (r.memory !== undefined) {
        const m = r.memory;
        parts.push(`device KV ${m.kvCacheBytes} B for ${m.kvCacheTokens} tok (bf16 ${m.kvCacheUncompressedBytes} B)`);
      }
      const restore = r.restore
        ? { tokens: r.restore.restoredTokens, reusedTokens: r.restore.reusedTokens, recomputedTokens: r.restore.recomputedTokens }
        : {};
      const memory = r.memory ? { bytes: r.memory.kvCacheBytes, bytesUncompressed: r.memory.kvCacheUncompressedBytes } : {};
      return [[r.sessionId, { t, kind: e.kind, ...restore, ...memory, detail: parts.join("; ") }]];
    }
  }
}

/** Nearest-rank quantile of raw values (sorted copy). */
export function exactQuantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Summary over a session's entries. Byte totals cover the entries returned (the newest `limit`), not all history. */
export function summarizeSession(sessionId: string, entries: SessionLogEntry[]): SessionView {
  const durations = new Map<string, number[]>();
  let bytesStored = 0;
  let bytesUncompressed = 0;
  let dedupeHitChunks = 0;
  let restoredTokens = 0;
  let recomputedTokens = 0;
  let deviceKvBytes: number | null = null;
  let deviceKvUncompressedBytes: number | null = null;
  for (const x of entries) {
    if (x.kind === "operation" && x.op !== undefined && x.durationMs !== undefined) {
      const list = durations.get(x.op) ?? [];
      list.push(x.durationMs);
      durations.set(x.op, list);
    } else if (x.kind === "chunks_stored") {
      bytesStored += x.bytes ?? 0;
      bytesUncompressed += x.bytesUncompressed ?? 0;
    } else if (x.kind === "dedupe_hit") {
      dedupeHitChunks += x.chunks ?? 0;
    } else if (x.kind === "client_report") {
      restoredTokens += x.tokens ?? 0;
      recomputedTokens += x.recomputedTokens ?? 0;
      if (x.bytes !== undefined) {
        deviceKvBytes = x.bytes;
        deviceKvUncompressedBytes = x.bytesUncompressed ?? null;
      }
    }
  }
  const latency: Record<string, LatencySummary> = {};
  for (const [op, list] of durations) latency[op] = { count: list.length, p50Ms: exactQuantile(list, 0.5), p99Ms: exactQuantile(list, 0.99) };
  return { sessionId, entries, latency, bytesStored, bytesUncompressed, dedupeHitChunks, restoredTokens, recomputedTokens, deviceKvBytes, deviceKvUncompressedBytes };
}
