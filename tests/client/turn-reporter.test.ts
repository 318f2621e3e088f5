// Opt-in client telemetry (client/telemetry/turn-reporter.ts): reports batch into POSTs the Worker's own validator
// accepts, split at 64, posted in order; failures are counted and never thrown into a chat; the client posts to
// /v1/telemetry with its tenant key, or a session's token when it has none.

import { describe, expect, it } from "vitest";
import { createClient, TurnReporter, type ClientReportBatch, type ClientTurnReport, type Fetch } from "../../client/index.ts";
import { MAX_REPORTS_PER_BATCH, parseClientReportBatch } from "../../format/telemetry/client-report.ts";

const report = (i: number): ClientTurnReport => ({
  sessionId: `s${i % 3}`,
  turnSeq: i + 1,
  ttftMs: 10 + i,
  tpotMs: 2,
  inputTokens: 40,
  outputTokens: 5,
  ...(i === 0 ? { restore: { restoredTokens: 64, reusedTokens: 64, recomputedTokens: 0, fetchMs: 3, decodeMs: 1, uploadMs: 0.5 } } : {}),
});

describe("TurnReporter", () => {
  it("should post queued reports as one batch the Worker's validator accepts", async () => {
    const posts: { batch: ClientReportBatch; token: string | undefined }[] = [];
    const r = new TurnReporter(async (batch, token) => void posts.push({ batch, token }), { flushIntervalMs: 60_000 });
    for (let i = 0; i < 3; i++) r.add(report(i), "tok-a");
    expect(posts).toHaveLength(0);
    await r.flush();
    expect(posts).toHaveLength(1);
    expect(parseClientReportBatch(JSON.parse(JSON.stringify(posts[0].batch)))).toEqual({ v: 1, reports: [report(0), report(1), report(2)] });
    expect(posts[0].token).toBe("tok-a");
    expect(r.counters).toEqual({ queued: 0, sent: 3, dropped: 0, failedPosts: 0 });
  });

  it("should post a full batch at once and split larger queues at the Worker's limit", async () => {
    const sizes: number[] = [];
    const r = new TurnReporter(async (batch) => void sizes.push(batch.reports.length), { flushIntervalMs: 60_000 });
    for (let i = 0; i < MAX_REPORTS_PER_BATCH + 10; i++) r.add(report(i));
    await r.flush();
    expect(sizes).toEqual([MAX_REPORTS_PER_BATCH, 10]);
  });

  it("should post on its own after the flush interval", async () => {
    let posted = 0;
    const r = new TurnReporter(async (b) => void (posted += b.reports.length), { flushIntervalMs: 5 });
    r.add(report(1));
    await new Promise((ok) => setTimeout(ok, 50));
    expect(posted).toBe(1);
  });

  it("should count a failed post and drop its reports without throwing", async () => {
    const r = new TurnReporter(async () => {
      throw new Error("offline");
    });
    r.add(report(1));
    r.add(report(2));
    await expect(r.flush()).resolves.toBeUndefined();
    expect(r.counters).toEqual({ queued: 0, sent: 0, dropped: 2, failedPosts: 1 });
  });

  it("should keep at most maxQueued reports, dropping the oldest", async () => {
    const got: number[] = [];
    const r = new TurnReporter(async (b) => void got.push(...b.reports.map((x) => x.turnSeq ?? 0)), { flushIntervalMs: 60_000, maxQueued: 2 });
    for (let i = 0; i < 5; i++) r.add(report(i));
    await r.flush();
    expect(got).toEqual([4, 5]);
    expect(r.counters.dropped).toBe(3);
  });
});

describe("client.telemetry", () => {
  const recording = (): { fetch: Fetch; calls: { url: string; init: RequestInit | undefined }[] } => {
    const calls: { url: string; init: RequestInit | undefined }[] = [];
    return { calls, fetch: async (url, init) => (calls.push({ url: String(url), init }), new Response('{"accepted":1}', { status: 202 })) };
  };

  it("should be off unless asked for", () => {
    expect(createClient({ baseUrl: "http://edge.test", fetch: recording().fetch }).telemetry).toBeNull();
  });

  it("should POST /v1/telemetry with the tenant key, else the session's token", async () => {
    for (const apiKey of ["tenant-key", null]) {
      const { fetch, calls } = recording();
      const client = createClient({ baseUrl: "http://edge.test", apiKey, fetch, telemetry: { flushIntervalMs: 60_000 } });
      client.telemetry!.add(report(0), "session-token");
      await client.telemetry!.flush();
      expect(calls).toHaveLength(1);
      expect(calls[0].url).toBe("http://edge.test/v1/telemetry");
      expect(calls[0].init?.method).toBe("POST");
      expect(new Headers(calls[0].init?.headers).get("authorization")).toBe(`Bearer ${apiKey ?? "session-token"}`);
      expect(parseClientReportBatch(JSON.parse(String(calls[0].init?.body))).reports).toEqual([report(0)]);
      expect(client.telemetry!.counters.sent).toBe(1);
    }
  });
});
