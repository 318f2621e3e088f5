// Validation of the client SDK's timing reports (format/telemetry): accepted shapes round-trip, malformed ones are
// rejected with a ClientReportError naming the field.
import { describe, expect, it } from "vitest";
import {
  ClientReportError,
  MAX_REPORTS_PER_BATCH,
  parseClientReportBatch,
  type ClientReportBatch,
} from "../../format/telemetry/client-report.ts";

const valid: ClientReportBatch = {
  v: 1,
  reports: [
    { sessionId: "s1", turnSeq: 4, ttftMs: 120.5, tpotMs: 21, inputTokens: 10, outputTokens: 3 },
    { sessionId: "s2", restore: { restoredTokens: 64, reusedTokens: 60, recomputedTokens: 4, fetchMs: 10, decodeMs: 2, uploadMs: 1 } },
    { sessionId: "s3", memory: { kvCacheBytes: 5_244_928, kvCacheTokens: 300, kvCacheUncompressedBytes: 17_203_200 } },
  ],
};

const rejects = (body: unknown, message: RegExp) => {
  expect(() => parseClientReportBatch(body)).toThrowError(ClientReportError);
  expect(() => parseClientReportBatch(body)).toThrowError(message);
};

describe("parseClientReportBatch", () => {
  describe("valid input", () => {
    it("should return the same reports", () => {
      expect(parseClientReportBatch(JSON.parse(JSON.stringify(valid)))).toEqual(valid);
    });
    it("should drop fields it does not know", () => {
      const r = parseClientReportBatch({ v: 1, reports: [{ sessionId: "s", ttftMs: 1, extra: "x" }] });
      expect(r.reports[0]).toEqual({ sessionId: "s", ttftMs: 1 });
    });
  });

  describe("malformed input", () => {
    it("should reject a wrong version", () => rejects({ v: 2, reports: valid.reports }, /v must be 1/));
    it("should reject an empty or oversized batch", () => {
      rejects({ v: 1, reports: [] }, /reports must be an array of 1\.\.64/);
      rejects({ v: 1, reports: Array.from({ length: MAX_REPORTS_PER_BATCH + 1 }, () => ({ sessionId: "s" })) }, /1\.\.64/);
    });
    it("should reject a negative or non-finite duration", () => {
      rejects({ v: 1, reports: [{ sessionId: "s", ttftMs: -1 }] }, /reports\[0\]\.ttftMs/);
      rejects({ v: 1, reports: [{ sessionId: "s", tpotMs: "fast" }] }, /reports\[0\]\.tpotMs/);
    });
    it("should reject a fractional token count", () => rejects({ v: 1, reports: [{ sessionId: "s", inputTokens: 1.5 }] }, /inputTokens must be an integer/));
    it("should reject a missing or huge session id", () => {
      rejects({ v: 1, reports: [{}] }, /sessionId/);
      rejects({ v: 1, reports: [{ sessionId: "x".repeat(129) }] }, /sessionId/);
    });
    it("should reject a restore missing a phase", () => {
      rejects({ v: 1, reports: [{ sessionId: "s", restore: { restoredTokens: 1, reusedTokens: 1, recomputedTokens: 0, fetchMs: 1, decodeMs: 1 } }] }, /restore\.uploadMs is required/);
    });
    it("should reject device memory that is incomplete, fractional, negative or absurd", () => {
      const memory = { kvCacheBytes: 1, kvCacheTokens: 1, kvCacheUncompressedBytes: 1 };
      rejects({ v: 1, reports: [{ sessionId: "s", memory: { kvCacheBytes: 1, kvCacheTokens: 1 } }] }, /memory\.kvCacheUncompressedBytes is required/);
      rejects({ v: 1, reports: [{ sessionId: "s", memory: { ...memory, kvCacheBytes: 1.5 } }] }, /memory\.kvCacheBytes must be an integer/);
      rejects({ v: 1, reports: [{ sessionId: "s", memory: { ...memory, kvCacheTokens: -1 } }] }, /memory\.kvCacheTokens must be an integer/);
      rejects({ v: 1, reports: [{ sessionId: "s", memory: { ...memory, kvCacheBytes: 2 ** 47 } }] }, /memory\.kvCacheBytes must be an integer in \[0, 70368744177664\]/);
      rejects({ v: 1, reports: [{ sessionId: "s", memory: 7 }] }, /memory must be an object/);
    });
    it("should reject reused + recomputed above restored", () => {
      rejects({ v: 1, reports: [{ sessionId: "s", restore: { restoredTokens: 4, reusedTokens: 3, recomputedTokens: 2, fetchMs: 1, decodeMs: 1, uploadMs: 1 } }] }, /exceeds restoredTokens/);
    });
    it("should carry a stable code and its class name", () => {
      const err = (() => {
        try {
          parseClientReportBatch(null);
        } catch (e) {
          return e as ClientReportError;
        }
      })();
      expect(err?.code).toBe("invalid_report");
      expect(err?.name).toBe("ClientReportError");
    });
  });
});
