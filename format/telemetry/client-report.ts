// Opt-in timing reports the client SDK posts to `POST /v1/telemetry` after a turn: TTFT, TPOT, how a restore went
// (fetch / decode+dequantize / GPU upload, and whether the restored tokens were reused or recomputed, llama.cpp #26676),
// and what the session's KV cache occupies on the client's device.

import { MlaError } from "../errors.ts";
/** Version of the report wire shape; bump on incompatible change. */
export const CLIENT_REPORT_VERSION = 1;
/** Reports per POST: a client batches turns, the Worker bounds work per request. */
export const MAX_REPORTS_PER_BATCH = 64;
/** Largest accepted body; 64 reports of ~300 B each fit with room to spare. */
export const MAX_REPORT_BODY_BYTES = 64 * 1024;
/** Upper bound on any duration field: a report claiming more than a day is corrupt, not slow. */
export const MAX_REPORT_DURATION_MS = 86_400_000;
/** Upper bound on token counts (well above any context window we serve). */
export const MAX_REPORT_TOKENS = 16_777_216;
/** Upper bound on byte counts (64 TiB: far above any device's memory). */
export const MAX_REPORT_BYTES = 2 ** 46;
/** Session ids are opaque to telemetry; bound their length so they cannot bloat storage. */
export const MAX_SESSION_ID_LENGTH = 128;

/** How a restore went on the client: where its time went and whether its tokens were used. */
export interface RestoreTiming {
  /** Tokens the restore delivered to the model runtime. */
  readonly restoredTokens: number;
  /** Restored tokens the runtime attended to without recomputing them (OTel `gen_ai.usage.cache_read.input_tokens`). */
  readonly reusedTokens: number;
  /** Restored tokens the runtime prefilled again anyway: > 0 is the "restore succeeded but was recomputed" failure. */
  readonly recomputedTokens: number;
  /** Network: request start to last chunk byte. */
  readonly fetchMs: number;
  /** Codec: decode + dequantize of all chunks. */
  readonly decodeMs: number;
  /** Device: writing the latents into GPU buffers. */
  readonly uploadMs: number;
}

/** What the session's KV cache costs the client's device after the turn: the memory MLA + quantization saves there. */
export interface DeviceKvMemory {
  /** Bytes the session's attention cache holds allocated (GPU buffers, or host memory for a CPU decoder). */
  readonly kvCacheBytes: number;
  /** Tokens in that cache. */
  readonly kvCacheTokens: number;
  /** The same tokens as the original model's bf16 K/V (2 · layers · kvHeads · headDim · 2 B per token). */
  readonly kvCacheUncompressedBytes: number;
}

/** One turn's timings. Optional fields are omitted when the client did not measure them. */
export interface ClientTurnReport {
  readonly sessionId: string;
  /** Sequence number of the turn the timings belong to, when known. */
  readonly turnSeq?: number;
  /** Time to first token (OTel `gen_ai.server.time_to_first_token`), ms. */
  readonly ttftMs?: number;
  /** Mean time per output token after the first (OTel `gen_ai.server.time_per_output_token`), ms. */
  readonly tpotMs?: number;
  /** Prompt tokens of the turn (OTel `gen_ai.usage.input_tokens`). */
  readonly inputTokens?: number;
  /** Generated tokens (OTel `gen_ai.usage.output_tokens`). */
  readonly outputTokens?: number;
  readonly restore?: RestoreTiming;
  readonly memory?: DeviceKvMemory;
}

/** `POST /v1/telemetry` body. */
export interface ClientReportBatch {
  readonly v: typeof CLIENT_REPORT_VERSION;
  readonly reports: readonly ClientTurnReport[];
}

/** `POST /v1/telemetry` response (HTTP 202). */
export interface ClientReportAccepted {
  readonly accepted: number;
}

/** A report body that does not match {@link ClientReportBatch}; `message` names the offending field. */
export class ClientReportError extends MlaError<"invalid_report"> {
  override readonly name = "ClientReportError";
  constructor(message: string) {
    super("invalid_report", message);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function num(obj: Record<string, unknown>, field: string, where: string, max: number, integer: boolean): number | undefined {
  const v = obj[field];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > max || (integer && !Number.isInteger(v))) {
    throw new ClientReportError(`${where}.${field} must be ${integer ? "an integer" : "a number"} in [0, ${max}]`);
  }
  return v;
}

function required(obj: Record<string, unknown>, field: string, where: string, max: number, integer: boolean): number {
  const v = num(obj, field, where, max, integer);
  if (v === undefined) throw new ClientReportError(`${where}.${field} is required`);
  return v;
}

function parseRestore(v: unknown, where: string): RestoreTiming {
  if (!isRecord(v)) throw new ClientReportError(`${where} must be an object`);
  const restoredTokens = required(v, "restoredTokens", where, MAX_REPORT_TOKENS, true);
  const reusedTokens = required(v, "reusedTokens", where, MAX_REPORT_TOKENS, true);
  const recomputedTokens = required(v, "recomputedTokens", where, MAX_REPORT_TOKENS, true);
  if (reusedTokens + recomputedTokens > restoredTokens) {
    throw new ClientReportError(`${where}: reusedTokens + recomputedTokens (${reusedTokens + recomputedTokens}) exceeds restoredTokens (${restoredTokens})`);
  }
  return {
    restoredTokens,
    reusedTokens,
    recomputedTokens,
    fetchMs: required(v, "fetchMs", where, MAX_REPORT_DURATION_MS, false),
    decodeMs: required(v, "decodeMs", where, MAX_REPORT_DURATION_MS, false),
    uploadMs: required(v, "uploadMs", where, MAX_REPORT_DURATION_MS, false),
  };
}

function parseMemory(v: unknown, where: string): DeviceKvMemory {
  if (!isRecord(v)) throw new ClientReportError(`${where} must be an object`);
  return {
    kvCacheBytes: required(v, "kvCacheBytes", where, MAX_REPORT_BYTES, true),
    kvCacheTokens: required(v, "kvCacheTokens", where, MAX_REPORT_TOKENS, true),
    kvCacheUncompressedBytes: required(v, "kvCacheUncompressedBytes", where, MAX_REPORT_BYTES, true),
  };
}

function parseTurn(v: unknown, where: string): ClientTurnReport {
  if (!isRecord(v)) throw new ClientReportError(`${where} must be an object`);
  const sessionId = v.sessionId;
  if (typeof sessionId !== "string" || sessionId.length === 0 || sessionId.length > MAX_SESSION_ID_LENGTH) {
    throw new ClientReportError(`${where}.sessionId must be a non-empty string of at most ${MAX_SESSION_ID_LENGTH} characters`);
  }
  const out: {
    sessionId: string;
    turnSeq?: number;
    ttftMs?: number;
    tpotMs?: number;
    inputTokens?: number;
    outputTokens?: number;
    restore?: RestoreTiming;
    memory?: DeviceKvMemory;
  } = { sessionId };
  const turnSeq = num(v, "turnSeq", where, Number.MAX_SAFE_INTEGER, true);
  if (turnSeq !== undefined) out.turnSeq = turnSeq;
  const ttftMs = num(v, "ttftMs", where, MAX_REPORT_DURATION_MS, false);
  if (ttftMs !== undefined) out.ttftMs = ttftMs;
  const tpotMs = num(v, "tpotMs", where, MAX_REPORT_DURATION_MS, false);
  if (tpotMs !== undefined) out.tpotMs = tpotMs;
  const inputTokens = num(v, "inputTokens", where, MAX_REPORT_TOKENS, true);
  if (inputTokens !== undefined) out.inputTokens = inputTokens;
  const outputTokens = num(v, "outputTokens", where, MAX_REPORT_TOKENS, true);
  if (outputTokens !== undefined) out.outputTokens = outputTokens;
  if (v.restore !== undefined) out.restore = parseRestore(v.restore, `${where}.restore`);
  if (v.memory !== undefined) out.memory = parseMemory(v.memory, `${where}.memory`);
  return out;
}

/** Validates an untrusted `POST /v1/telemetry` body; throws {@link ClientReportError} naming the first bad field. */
export function parseClientReportBatch(value: unknown): ClientReportBatch {
  if (!isRecord(value)) throw new ClientReportError("body must be a JSON object {v, reports}");
  if (value.v !== CLIENT_REPORT_VERSION) throw new ClientReportError(`v must be ${CLIENT_REPORT_VERSION}`);
  const reports = value.reports;
  if (!Array.isArray(reports) || reports.length === 0 || reports.length > MAX_REPORTS_PER_BATCH) {
    throw new ClientReportError(`reports must be an array of 1..${MAX_REPORTS_PER_BATCH} turn reports`);
  }
  return { v: CLIENT_REPORT_VERSION, reports: reports.map((r, i) => parseTurn(r, `reports[${i}]`)) };
}
