// The default route classifier against the edge store's routes (worker/app.ts, worker/routes/*.ts).
import { describe, expect, it } from "vitest";
import { defaultRouteClassifier as classify } from "../../worker/telemetry/route-classifier.ts";

describe("defaultRouteClassifier", () => {
  it.each([
    ["POST", "/v1/sessions", { op: "create" }],
    ["GET", "/v1/sessions/abc", { op: "manifest", sessionId: "abc" }],
    ["DELETE", "/v1/sessions/abc", { op: "delete", sessionId: "abc" }],
    ["POST", "/v1/sessions/abc/turns", { op: "append", sessionId: "abc" }],
    ["GET", "/v1/sessions/abc/turns/ws", { op: "append", sessionId: "abc" }],
    ["GET", "/v1/sessions/abc/chunks", { op: "restore", sessionId: "abc" }],
    ["POST", "/v1/sessions/abc/fork", { op: "fork", sessionId: "abc" }],
    ["POST", "/v1/sessions/abc/truncate", { op: "truncate", sessionId: "abc" }],
    ["POST", "/v1/sessions/abc/tokens", { op: "token", sessionId: "abc" }],
    ["GET", "/v1/sessions/a%20b/chunks", { op: "restore", sessionId: "a b" }],
    ["GET", "/v1/sessions/bad%E0%A4%A/chunks", { op: "restore", sessionId: "bad%E0%A4%A" }],
  ] as const)("should classify %s %s", (method, path, expected) => {
    expect(classify(method, path)).toEqual(expected);
  });

  it("should not record telemetry's own routes, health or admin", () => {
    for (const path of ["/metrics", "/dashboard", "/dashboard/api/series", "/v1/telemetry", "/v1/health", "/v1/admin/stats"]) {
      expect(classify("GET", path)).toBeNull();
    }
  });
});
