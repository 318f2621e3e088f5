// Append and restore inside workerd: turns become visible whole, chunks are verified against the control message,
// restore streams exactly the bytes uploaded (newest chunk per slot), and every rejected append stores nothing.
import { describe, expect, it } from "vitest";
import { decodeChunk, packChunk } from "../../format/chunk/index.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import { f16ToF32, f32ToF16Bits } from "../../format/codec/fp16.ts";
import { encodeFrame, FrameType } from "../../format/wire/frames.ts";
import { controlFrame, encodeAppendControl } from "../../format/wire/control-msgpack.ts";
import type { AppendResult, Manifest } from "../../format/wire/messages.ts";
import { Conversation } from "./helpers/conversation.ts";
import { append, call, createSession, errorOf, readRestore, tenantChunkStats, TINY_C, TINY_CODEC, TINY_SPEC, type Session } from "./helpers/store.ts";

const IMAGE = "ab".repeat(32);

async function manifest(s: Session): Promise<Manifest> {
  const res = await call(`/v1/sessions/${s.id}`, { headers: s.auth });
  expect(res.status).toBe(200);
  return (await res.json()) as Manifest;
}

async function appendTurn(s: Session, conv: Conversation, count: number, opts = {}): Promise<AppendResult> {
  const turn = conv.build(count, opts);
  const res = await append(s, turn.frames);
  expect(res.status, await res.clone().text()).toBe(201);
  conv.accept(turn);
  return (await res.json()) as AppendResult;
}

describe("append", () => {
  it("should commit turns that fill, cross and end inside slots, and restore the newest chunk of every slot", async () => {
    const s = await createSession();
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const r1 = await appendTurn(s, conv, 6); // slot 0 sealed, slot 1 raw tail (2 tokens)
    expect(r1).toMatchObject({ seq: 1, tokenStart: 0, tokenCount: 6, chunksStored: 2, chunksReused: 0 });
    const r2 = await appendTurn(s, conv, 3, { image: { hash: IMAGE, at: 0, length: 2 } }); // seals slot 1, tail slot 2 (1 token)
    expect(r2).toMatchObject({ seq: 2, tokenStart: 6, tokenCount: 3 });

    const m = await manifest(s);
    expect(m).toMatchObject({ head: 2, tokens: 9, chunkTokens: TINY_C, codec: TINY_CODEC });
    expect(m.turns.map((t) => [t.seq, t.tokenStart, t.tokenCount, t.chunks])).toEqual([
      [1, 0, 6, 2],
      [2, 6, 3, 2],
    ]);
    // bf16 GQA K/V: 2 (K,V) · 2 layers · 1 kv head · 8 dims · 2 bytes = 64 B per token.
    expect(m.bytesUncompressed).toBe(9 * 64);
    expect(m.nextPosition).toBe(Math.max(...conv.positions) + 1);
    expect(m.ropeDelta).toBe(m.nextPosition - 9);

    const restored = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    expect(restored.error).toBeNull();
    expect(restored.header.chunks.map((c) => [c.slot, c.tokenStart, c.tokenCount, c.sealed])).toEqual([
      [0, 0, 4, true],
      [1, 4, 4, true],
      [2, 8, 1, false],
    ]);
    expect(m.bytesStored).toBe(restored.header.chunks.reduce((a, c) => a + c.bytes, 0));
    const decoded = restored.chunks.map((b) => decodeChunk(b, TINY_SPEC).header);
    expect(decoded.map((h) => [h.tokenStart, h.tokenCount, h.codec.sealed])).toEqual([
      [0, 4, true],
      [4, 4, true],
      [8, 1, false],
    ]);
    // Slot 1 spans both turns: its modality carries the image tokens of turn 2.
    expect([...decoded[1].modality]).toEqual([0, 0, 1, 1]);
    expect(restored.end).toMatchObject({ done: true, chunks: 3 });
  });

  it("should keep every chunk raw float32 in a session created with storage raw", async () => {
    const s = await createSession("alpha", { storage: "raw" });
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    conv.raw = true;
    await appendTurn(s, conv, 5);
    await appendTurn(s, conv, 4);
    expect((await manifest(s)).storage).toBe("raw");
    const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    expect(r.header.chunks.map((c) => [c.tokenStart, c.tokenCount, c.sealed])).toEqual([
      [0, 4, false],
      [4, 4, false],
      [8, 1, false],
    ]);
    const layer0 = decodeChunk(r.chunks[1], TINY_SPEC).layers[0];
    if (layer0.kind !== "raw") throw new Error("expected a raw layer");
    expect([...layer0.latent.subarray(0, 4)]).toEqual([...conv.values(4, 0).latent]);
  });

  it("should split wide slots into layer ranges and restore only the ranges a layers= query overlaps", async () => {
    // Raw float32, 8 layers × (1024 + 256) values × 64 tokens = 2.6 MB per slot: planChunkLayerRanges gives 4 + 4 layers.
    const wide = { layers: 8, heads: 8, kvHeads: 8, headDim: 128, ropeDims: 32, dKv: 128, latentSpaces: 1, mropeSection: null } as const;
    const s = await createSession("alpha", { storage: "raw", chunkTokens: 64 }, wide);
    const conv = new Conversation(wide, TINY_CODEC, 64);
    conv.raw = true;
    await appendTurn(s, conv, 64);
    const ranges = async (q: string) =>
      (await readRestore(await call(`/v1/sessions/${s.id}/chunks${q}`, { headers: s.auth }))).header.chunks.map((c) => [c.layerStart, c.layerCount]);
    expect(await ranges("")).toEqual([
      [0, 4],
      [4, 4],
    ]);
    expect(await ranges("?layers=5-6")).toEqual([[4, 4]]);
    expect(await ranges("?layers=3-4")).toEqual([
      [0, 4],
      [4, 4],
    ]);
    expect(await ranges("?layers=0-0")).toEqual([[0, 4]]);
  });

  it("should restore a token and layer range only", async () => {
    const s = await createSession();
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    await appendTurn(s, conv, 12);
    const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks?from=5&to=8&layers=1-1`, { headers: s.auth }));
    expect(r.header.chunks.map((c) => [c.slot, c.layerStart, c.layerCount])).toEqual([[1, 0, 2]]);
    // planChunkLayerRanges keeps both tiny layers in one chunk, so layer 1 comes inside the chunk of layers 0–1.
    expect(r.chunks).toHaveLength(1);
    expect(decodeChunk(r.chunks[0], TINY_SPEC).header.tokenStart).toBe(4);
  });

  it("should pack proxy float32 and float16 latents with the WASM codec, bit-identical to the reference codec", async () => {
    const s = await createSession();
    const conv = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);
    const t32 = conv.build(5, { proxy: "f32" });
    expect((await append(s, t32.frames)).status).toBe(201);
    conv.accept(t32);
    const t16 = conv.build(3, { proxy: "f16" });
    expect((await append(s, t16.frames)).status).toBe(201);
    conv.accept(t16);

    const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    // Slot 0 came as f32 in turn 1: identical to the chunk the client would have packed itself.
    expect([...r.chunks[0]]).toEqual([...t32.chunks[0].bytes]);
    // Slot 1 came as f16 in turn 2: the Worker widened f16 → f32, so the reference packs the f16-rounded values.
    const c = t16.chunks[0];
    const h = decodeChunk(c.bytes, TINY_SPEC).header;
    const round = (a: Float32Array): Float32Array => Float32Array.from(a, (x) => f16ToF32(f32ToF16Bits(x, "nearest-even")));
    const layers = [0, 1].map((l) => {
      const latent = new Float32Array(4 * 4);
      const rope = new Float32Array(4 * 2);
      for (let t = 0; t < 4; t++) {
        const v = conv.values(4 + t, l);
        latent.set(round(v.latent), t * 4);
        rope.set(round(v.rope), t * 2);
      }
      return { latent, rope };
    });
    const expected = packChunk(referenceCodec, TINY_SPEC, h.codec, { tokenStart: 4, modality: h.modality, positions: h.positions, layerStart: 0, layers });
    const diff = [...expected].findIndex((b, i) => b !== r.chunks[1][i]);
    expect(diff, `first differing byte ${diff} of ${expected.length}`).toBe(-1);
  });
});

describe("append: rejected turns store nothing", () => {
  async function expectRejected(frames: Uint8Array[], status: number, code: string, reason?: string): Promise<void> {
    const s = await createSession("beta");
    const before = await tenantChunkStats("beta");
    const res = await append(s, frames);
    expect(res.status).toBe(status);
    const err = await errorOf(res);
    expect(err.code).toBe(code);
    if (reason !== undefined) expect(err.reason).toBe(reason);
    expect((await manifest(s)).head).toBe(0);
    expect(await tenantChunkStats("beta")).toEqual(before);
  }

  const conv = () => new Conversation(TINY_SPEC, TINY_CODEC, TINY_C);

  it("should reject a chunk whose checksum fails (422) after a valid one", async () => {
    const t = conv().build(9);
    const bad = t.chunks[1].bytes.slice();
    bad[bad.length - 10] ^= 0x40;
    await expectRejected([t.frames[0], t.frames[1], encodeFrame(FrameType.chunk, bad), t.frames[3]], 422, "invalid_chunk", "checksum_mismatch");
  });

  it("should reject a truncated chunk (422) and a body that ends early (400)", async () => {
    const t = conv().build(9);
    await expectRejected([t.frames[0], encodeFrame(FrameType.chunk, t.chunks[0].bytes.subarray(0, 50))], 422, "invalid_chunk", "truncated");
    await expectRejected([t.frames[0], t.frames[1], t.frames[2]], 400, "bad_request", "truncated");
    await expectRejected([t.frames[0], t.frames[1], t.frames[2].subarray(0, 40)], 400, "bad_request", "truncated");
  });

  it("should reject a chunk of another spec, codec, range or position set (422)", async () => {
    const other = new Conversation({ ...TINY_SPEC, dKv: 2 }, TINY_CODEC, TINY_C).build(4);
    const t = conv().build(4);
    await expectRejected([t.frames[0], other.frames[1]], 422, "invalid_chunk", "spec_mismatch");
    const int8 = new Conversation(TINY_SPEC, { ...TINY_CODEC, bits: 8 }, TINY_C).build(4);
    await expectRejected([t.frames[0], int8.frames[1]], 422, "invalid_chunk", "codec_mismatch");
    const shifted = conv().build(4, { image: { hash: IMAGE, at: 0, length: 2 } });
    await expectRejected([t.frames[0], shifted.frames[1]], 422, "invalid_chunk", "chunk_mismatch");
  });

  it("should reject extra frames, unknown frame types and oversize frames", async () => {
    const t = conv().build(4);
    await expectRejected([...t.frames, t.frames[1]], 400, "bad_request");
    const unknown = t.frames[1].slice();
    unknown[0] = 9;
    await expectRejected([t.frames[0], unknown], 400, "bad_request", "unknown_type");
    const huge = new Uint8Array(5);
    huge[0] = FrameType.chunk;
    new DataView(huge.buffer).setUint32(1, 1_800_001, true);
    await expectRejected([t.frames[0], huge], 413, "too_large");
  });

  it("should reject bad control messages (400): wrong first frame, bad arrays, image tokens without media", async () => {
    const t = conv().build(4);
    await expectRejected([t.frames[1]], 400, "bad_request");
    await expectRejected([controlFrame(encodeAppendControl({ ...t.control, modality: [0, 0, 0] })), t.frames[1]], 400, "bad_request");
    await expectRejected([controlFrame(encodeAppendControl({ ...t.control, modality: [0, 1, 0, 0] })), t.frames[1]], 400, "bad_request");
    await expectRejected([controlFrame(encodeAppendControl({ ...t.control, media: [{ hash: "ab", start: 0, length: 1 }] })), t.frames[1]], 400, "bad_request");
  });

  it("should let exactly one of two concurrent writers of the same seq commit, never interleaving their chunks", async () => {
    const s = await createSession();
    const one = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C).build(9);
    const two = new Conversation(TINY_SPEC, TINY_CODEC, TINY_C).build(9);
    const results = await Promise.all([append(s, one.frames), append(s, two.frames)]);
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    const winner = results[0].status === 201 ? one : two;
    const r = await readRestore(await call(`/v1/sessions/${s.id}/chunks`, { headers: s.auth }));
    expect(r.chunks.map((c) => [...c])).toEqual(winner.chunks.map((c) => [...c.bytes]));
    expect((await manifest(s)).head).toBe(1);
  });

  it("should answer 409 turn_conflict to a stale expectedSeq and keep the session unchanged", async () => {
    const s = await createSession();
    const c = conv();
    const first = c.build(3);
    const second = c.build(3); // built from the same state: both claim seq 1
    expect((await append(s, first.frames)).status).toBe(201);
    const res = await append(s, second.frames);
    expect(res.status).toBe(409);
    expect((await errorOf(res)).code).toBe("turn_conflict");
    const m = await manifest(s);
    expect([m.head, m.tokens]).toEqual([1, 3]);
  });
});
