// What the Worker records: one discriminated union for request timings, store events and client reports. Events are
// plain data so they can be batched across requests and sent to the MetricsObject over RPC (structured clone).
import type { ClientTurnReport } from "../../format/telemetry/client-report.ts";

/** Store operations with their own latency histogram; everything else under the API is `other`. */
export const OPERATIONS = ["append", "restore", "manifest", "create", "fork", "delete", "truncate", "token", "other"] as const;
export type Operation = (typeof OPERATIONS)[number];

/** Operations charted on the dashboard (the three the issue asks p50/p99 for). */
export const CHARTED_OPERATIONS = ["append", "restore", "manifest"] as const satisfies readonly Operation[];

/** Why chunks were freed. `ttl` is the alarm-driven expiry of an idle session. */
export const EVICTION_REASONS = ["ttl", "delete", "truncate"] as const;
export type EvictionReason = (typeof EVICTION_REASONS)[number];

/** One HTTP request (from {@link recordRequests}) or one WebSocket turn (from the store via recordEvent). */
export interface OperationEvent {
  readonly kind: "operation";
  readonly op: Operation;
  readonly status: number;
  /** Stable error code of a failed request (the `{error:{code}}` of the response), when known. */
  readonly errorCode?: string;
  /** Request start to response headers, or to the last body byte for streamed bodies. */
  readonly durationMs: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly sessionId?: string;
}

/** Chunks an append newly wrote (dedupe misses), with the bytes they occupy and their bf16-equivalent size. */
export interface ChunksStoredEvent {
  readonly kind: "chunks_stored";
  readonly sessionId: string;
  readonly chunks: number;
  readonly tokens: number;
  readonly bytesStored: number;
  /** Size the same latents would have uncompressed (bf16), for the compression-ratio gauge. */
  readonly bytesUncompressed: number;
}

/** Chunks an append found already stored (content-addressed dedupe hits): nothing was written for them. */
export interface DedupeHitEvent {
  readonly kind: "dedupe_hit";
  readonly sessionId: string;
  readonly chunks: number;
  readonly tokens: number;
  /** Stored bytes the hit avoided writing. */
  readonly bytesSaved: number;
}

export interface SessionCreatedEvent {
  readonly kind: "session_created";
  readonly sessionId: string;
}

export interface ForkEvent {
  readonly kind: "fork";
  /** The parent session. */
  readonly sessionId: string;
  readonly childSessionId: string;
}

/** Chunks freed (last reference dropped) by TTL expiry, delete or truncate. */
export interface EvictionEvent {
  readonly kind: "eviction";
  readonly reason: EvictionReason;
  readonly sessionId?: string;
  /** Sessions removed by this eviction (0 for truncate). */
  readonly sessions: number;
  readonly chunks: number;
  readonly bytesStored: number;
  readonly bytesUncompressed: number;
}

/** Server side of a restore: tokens asked for and tokens actually found (LMCache `num_requested_tokens`/`num_hit_tokens`). */
export interface RestoreServedEvent {
  readonly kind: "restore_served";
  readonly sessionId: string;
  readonly requestedTokens: number;
  readonly hitTokens: number;
  /** Chunk bytes sent. */
  readonly bytes: number;
  /** Set when the stream ended with an error frame after its 200 (e.g. `corrupt_chunk`); counted as a restore error. */
  readonly errorCode?: string;
}

/** A validated client SDK report (format/telemetry). */
export interface ClientReportEvent {
  readonly kind: "client_report";
  readonly report: ClientTurnReport;
}

/** Store events the edge store reports through `recordEvent`. */
export type StoreEvent =
  | ChunksStoredEvent
  | DedupeHitEvent
  | SessionCreatedEvent
  | ForkEvent
  | EvictionEvent
  | RestoreServedEvent
  | OperationEvent;

export type TelemetryEvent = StoreEvent | ClientReportEvent;
