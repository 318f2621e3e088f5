import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";

describe("GET /v1/health", () => {
  it("should answer with the wire format version (2: MessagePack control frames) and the chunk format version", async () => {
    const res = await SELF.fetch("https://edge.test/v1/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, formatVersion: 2, chunkFormatVersion: 1 });
  });
});
