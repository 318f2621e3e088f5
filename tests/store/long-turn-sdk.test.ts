// Turns of any length through the SDK against the real local store (wrangler's workerd, tests/e2e/edge-server.ts):
// `client.store.sessions.append` splits a turn above the per-request limits into staged parts at slot boundaries and
// the last part commits them; a restore gives back exactly the uploaded chunks. Plus the splitter's own contract.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, splitAppendBody, type MlaEdge } from "../../client/index.ts";
import { readFixedHeader } from "../../format/chunk/header.ts";
import type { CacheSpec } from "../../format/cache-spec.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { MAX_TURN_TOKENS } from "../../format/wire/limits.ts";
import { startEdgeServer, type EdgeServer } from "../e2e/edge-server.ts";
import { Conversation, type BuiltTurn } from "../worker/helpers/conversation.ts";

const SPEC: CacheSpec = { layers: 2, heads: 2, kvHeads: 1, headDim: 8, ropeDims: 2, dKv: 4, latentSpaces: 1, mropeSection: [1, 1, 2] };
const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const C = 64;
const IMAGE = "ef".repeat(32);

let edge: EdgeServer;
let client: MlaEdge;

beforeAll(async () => {
  edge = await startEdgeServer();
  client = createClient({ baseUrl: edge.url, apiKey: edge.apiKey });
}, 120_000);

afterAll(async () => {
  await edge?.stop();
});

const body = (t: BuiltTurn) => ({ control: t.control, chunks: t.chunks.map((c) => c.bytes) });

async function restored(id: string, token: string): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const ev of await client.store.sessions.restore(id, {}, { token })) if (ev.type === "chunk") out.push(ev.bytes);
  return out;
}

describe("splitAppendBody", () => {
  const conv = new Conversation(SPEC, CODEC, C, 7);
  const first = conv.build(5);
  conv.accept(first);
  const long = conv.build(3 * MAX_TURN_TOKENS + 100, { image: { hash: IMAGE, at: 8100, length: 200 } });

  it("should leave a turn that fits alone and cut a longer one at slot boundaries into parts within the limits", () => {
    expect(splitAppendBody(body(first))).toEqual([body(first)]);
    const parts = splitAppendBody(body(long));
    expect(parts.length).toBe(4);
    let at = 5;
    for (const [i, p] of parts.entries()) {
      const n = p.control.tokenIds.length;
      expect(n).toBeLessThanOrEqual(MAX_TURN_TOKENS);
      expect(p.control.final).toBe(i === parts.length - 1 ? undefined : false);
      if (i < parts.length - 1) expect((at + n) % C).toBe(0);
      // Every chunk of the part lies in its slots: the first part re-covers slot 0 from token 0.
      for (const c of p.chunks) {
        const h = readFixedHeader(c);
        expect(h.tokenStart).toBeGreaterThanOrEqual(i === 0 ? 0 : at);
        expect(h.tokenStart).toBeLessThan(at + n);
      }
      at += n;
    }
    expect(at).toBe(5 + long.control.tokenIds.length);
    expect(parts.flatMap((p) => p.chunks)).toEqual(long.chunks.map((c) => c.bytes));
    expect(parts.flatMap((p) => p.control.tokenIds)).toEqual(long.control.tokenIds);
    expect(parts.flatMap((p) => p.control.positions)).toEqual(long.control.positions);
    // The image (tokens 8,105–8,304 of the session) is cut at 8,192 into two spans that keep their place in the item.
    expect(parts.flatMap((p) => p.control.media ?? [])).toEqual([
      { hash: IMAGE, start: 8105, length: 87, offset: 0 },
      { hash: IMAGE, start: 8192, length: 113, offset: 87 },
    ]);
  });

  it("should cut by body bytes too", () => {
    const bytes = long.chunks.reduce((a, c) => a + c.bytes.length, 0);
    const parts = splitAppendBody(body(long), { maxTokens: 1 << 20, maxBytes: 64 * 1024 + 16 * 8192 + Math.ceil(bytes / 5) });
    expect(parts.length).toBeGreaterThanOrEqual(5);
    expect(parts.flatMap((p) => p.chunks).length).toBe(long.chunks.length);
  });
});

describe("a long turn through the SDK and the local store", () => {
  it("should append a turn of 3× the per-request limit in parts and restore it bit-exactly", async () => {
    const s = await client.store.sessions.create({ spec: SPEC, codec: CODEC, model: { id: "test/tiny", conversion: "c1" }, chunkTokens: C });
    const conv = new Conversation(SPEC, CODEC, C, 11);
    const first = conv.build(5);
    expect(await client.store.sessions.append(s.id, body(first), { token: s.token })).toMatchObject({ seq: 1, tokenCount: 5 });
    conv.accept(first);
    const long = conv.build(3 * MAX_TURN_TOKENS + 100, { image: { hash: IMAGE, at: 8100, length: 200 } });
    const result = await client.store.sessions.append(s.id, body(long), { token: s.token });
    expect(result).toMatchObject({ seq: 2, tokenStart: 5, tokenCount: 3 * MAX_TURN_TOKENS + 100, bytes: long.chunks.reduce((a, c) => a + c.bytes.length, 0) });
    const m = await client.store.sessions.retrieve(s.id, { token: s.token });
    expect([m.head, m.tokens, m.turns.map((t) => t.tokenCount)]).toEqual([2, 5 + 3 * MAX_TURN_TOKENS + 100, [5, 3 * MAX_TURN_TOKENS + 100]]);
    const chunks = await restored(s.id, s.token);
    expect(chunks.length).toBe(long.chunks.length);
    expect(chunks.every((c, i) => Buffer.compare(Buffer.from(c), Buffer.from(long.chunks[i].bytes)) === 0)).toBe(true);
    // The next turn continues after it as usual.
    conv.accept(long);
    const next = conv.build(9);
    expect(await client.store.sessions.append(s.id, body(next), { token: s.token })).toMatchObject({ seq: 3, tokenStart: 5 + 3 * MAX_TURN_TOKENS + 100 });
  }, 300_000);
});
