// End to end in Node against the real edge store (wrangler dev --local): over 50 eval cases, every turn answered after
// a restore from the edge (a "page reload": a new runtime session opened from id + token) equals the uninterrupted
// session's answer with the same codec; the restored cache is bit-identical; the vision tower is not called again;
// usage.cached_tokens is the restored prefix; a restore whose connection breaks is resumed and gives the same cache. Model: the demo's converted checkpoint; vision tower: onnxruntime-web wasm.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as ort from "onnxruntime-web";
import { APIConnectionError, AuthenticationError, OrtVisionEncoder, createClient, type ChatMessage, type ChatSession, type MlaEdge } from "../../client/index.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import type { MlaCacheSnapshot } from "../../runtime/mla/attention.ts";
import { caseImage, DEMO_MODEL_DIR, demoChatModel, readEvalCases, type EvalCase } from "../client/fixture-model.ts";
import { startCuttingProxy } from "./cutting-proxy.ts";
import { startEdgeServer, type EdgeServer } from "./edge-server.ts";

const CASES = 50;
const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const CHUNK_TOKENS = 16; // the fixture's 3-turn chats are ~40 tokens: C = 16 seals slots within and across turns

let edge: EdgeServer;
let client: MlaEdge;
let cases: EvalCase[];

beforeAll(async () => {
  edge = await startEdgeServer();
  ort.env.wasm.numThreads = 1;
  const onnx = new Uint8Array(await readFile(join(DEMO_MODEL_DIR, "vision.onnx")));
  const vision = await OrtVisionEncoder.create(ort, onnx, { cells: 16, patchDim: 192, hidden: 128 }, { executionProviders: ["wasm"] });
  client = createClient({ baseUrl: edge.url, apiKey: edge.apiKey, model: await demoChatModel(vision) });
  cases = await readEvalCases(CASES);
});

afterAll(async () => {
  await edge?.stop();
});

function turnMessages(c: EvalCase, t: number): ChatMessage[] {
  const q = c.turns[t].question;
  return t === 0 ? [{ role: "user", content: [{ type: "image", image: caseImage(c) }, { type: "text", text: q }] }] : [{ role: "user", content: q }];
}

function sameCache(a: MlaCacheSnapshot, b: MlaCacheSnapshot): boolean {
  if (a.length !== b.length || a.modality.some((m, i) => m !== b.modality[i])) return false;
  const eq = (x: Float32Array, y: Float32Array) => x.length === y.length && Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y.buffer, y.byteOffset, y.byteLength)) === 0;
  return a.layers.every((l, i) => eq(l.latent, b.layers[i].latent) && eq(l.kRope, b.layers[i].kRope));
}

describe("restore from the edge over HTTP", () => {
  it(`should answer every turn of ${CASES} eval cases like the uninterrupted session`, async () => {
    const model = client.model!;
    let turns = 0;
    let sealed = 0;
    let correct = 0;
    for (const c of cases) {
      const a = await client.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
      let b: ChatSession = await client.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
      for (let t = 0; t < c.turns.length; t++) {
        if (t > 0) {
          const before = model.vision.calls;
          b = await client.sessions.open(b.id, b.token); // page reload: only id + token survive
          expect(model.vision.calls, "a restore must not run the vision tower").toBe(before);
          expect(b.turns).toBe(t);
          expect(sameCache(await a.inspectCache(), await b.inspectCache()), `case ${cases.indexOf(c)} turn ${t}: restored cache differs`).toBe(true);
        }
        const restoredPrefix = b.length;
        const visionBefore = model.vision.calls;
        const ra = await a.chat({ messages: turnMessages(c, t), maxTokens: 4 });
        const rb = await b.chat({ messages: turnMessages(c, t), maxTokens: 4 });
        expect(model.vision.calls - visionBefore).toBe(t === 0 ? 2 : 0); // one image per session, only in turn 1
        expect(rb.tokenIds, `case ${cases.indexOf(c)} turn ${t}`).toEqual(ra.tokenIds);
        expect(rb.usage.cached_tokens).toBe(t === 0 ? 0 : restoredPrefix);
        expect(rb.usage.kv_bytes).toBe(ra.usage.kv_bytes);
        turns++;
        if (rb.message.content === c.turns[t].answer) correct++;
      }
      const manifest = await client.store.sessions.retrieve(b.id, { token: b.token });
      expect(manifest.tokens).toBe(a.length);
      expect(manifest.bytesStored).toBe(b.kvBytes.stored);
      if (manifest.tokens >= CHUNK_TOKENS) sealed++;
    }
    expect(turns).toBe(3 * CASES);
    expect(sealed).toBe(CASES);
    // a sanity floor for the d_kv = 16 MD-SVD conversion with int4 latents (the reference model is ~100 %)
    expect(correct / turns).toBeGreaterThan(0.8);
  });

  it("should fork and truncate on the edge and continue identically", async () => {
    const c = cases[0];
    const s = await client.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
    const answers: (readonly number[])[] = [];
    const caches: MlaCacheSnapshot[] = [];
    for (let t = 0; t < 3; t++) {
      answers.push((await s.chat({ messages: turnMessages(c, t), maxTokens: 4 })).tokenIds);
      caches.push(await s.inspectCache());
    }
    const f = await s.fork(1);
    expect(f.id).not.toBe(s.id);
    expect(sameCache(caches[0], await f.inspectCache())).toBe(true);
    expect((await f.chat({ messages: turnMessages(c, 1), maxTokens: 4 })).tokenIds).toEqual(answers[1]);
    await s.truncate(2);
    expect(sameCache(caches[1], await s.inspectCache())).toBe(true);
    expect((await s.chat({ messages: turnMessages(c, 2), maxTokens: 4 })).tokenIds).toEqual(answers[2]);
  });

  it("should report turns and the restore to the edge's /metrics when telemetry is on", async () => {
    const metric = async (name: string): Promise<number> => {
      const text = await (await fetch(`${edge.url}/metrics`, { headers: { authorization: `Bearer ${edge.operatorKey}` } })).text();
      const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{}`));
      return line === undefined ? 0 : Number(line.split(" ").pop());
    };
    const reporting = createClient({ baseUrl: edge.url, apiKey: edge.apiKey, model: client.model, telemetry: { flushIntervalMs: 60_000 } });
    const before = {
      reports: await metric("mla_edge_client_reports_total"),
      cached: await metric("mla_edge_prompt_tokens_cached_total"),
      restored: await metric("mla_edge_client_restored_tokens_total"),
      deviceKv: await metric("mla_edge_client_kv_cache_bytes_sum"),
      deviceKvBf16: await metric("mla_edge_client_kv_cache_uncompressed_bytes_sum"),
    };
    const c = cases[1];
    const s = await reporting.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
    const first = await s.chat({ messages: turnMessages(c, 0), maxTokens: 4 });
    const reopened = await reporting.sessions.open(s.id, s.token);
    const restored = reopened.length;
    const r = await reopened.chat({ messages: turnMessages(c, 1), maxTokens: 4 });
    expect(r.usage.cached_tokens).toBe(restored);
    // Device KV: Node has no WebGPU here, so the CPU reference decoder holds f32 rows (k_rope n_kv·r + latent n_kv·d_kv
    // per token and layer) in buffers of 64 rows doubled as needed, plus a modality byte per row.
    const spec = client.model!.spec;
    const deviceBytes = (tokens: number) => {
      let rows = 64;
      while (rows < tokens) rows *= 2;
      return spec.layers * rows * ((spec.kvHeads * spec.ropeDims + spec.kvHeads * spec.dKv) * 4 + 1);
    };
    expect(first.usage.kv_device_bytes).toBe(deviceBytes(s.length));
    expect(r.usage.kv_device_bytes).toBe(deviceBytes(reopened.length));
    await reporting.telemetry!.flush();
    expect(reporting.telemetry!.counters).toMatchObject({ sent: 2, dropped: 0 });
    // the Worker aggregates within its flush delay (250 ms)
    let reports = 0;
    for (let i = 0; i < 40 && reports < before.reports + 2; i++) {
      await new Promise((ok) => setTimeout(ok, 100));
      reports = await metric("mla_edge_client_reports_total");
    }
    expect(reports - before.reports).toBe(2);
    expect((await metric("mla_edge_client_restored_tokens_total")) - before.restored).toBe(restored);
    expect((await metric("mla_edge_prompt_tokens_cached_total")) - before.cached).toBe(restored);
    expect((await metric("mla_edge_client_kv_cache_bytes_sum")) - before.deviceKv).toBe(first.usage.kv_device_bytes + r.usage.kv_device_bytes);
    expect((await metric("mla_edge_client_kv_cache_uncompressed_bytes_sum")) - before.deviceKvBf16).toBe(
      first.usage.kv_bytes_uncompressed + r.usage.kv_bytes_uncompressed,
    );
  });

  it("should resume a restore whose connection breaks mid-stream, restore the same cache, and never stitch two versions", async () => {
    const proxy = await startCuttingProxy(edge.url);
    try {
      const viaProxy = createClient({ baseUrl: proxy.url, apiKey: edge.apiKey, model: client.model });
      const c = cases[2];
      const s = await client.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
      for (let t = 0; t < 3; t++) await s.chat({ messages: turnMessages(c, t), maxTokens: 4 });
      const live = await s.inspectCache();
      expect(s.length).toBeGreaterThan(2 * CHUNK_TOKENS); // three slots, so a resume can start past slot 0

      const uncut = await viaProxy.sessions.open(s.id, s.token);
      expect(sameCache(live, await uncut.inspectCache())).toBe(true);
      const total = proxy.restoreBytes[0];
      expect(proxy.restores).toEqual([""]);

      // Break 1 in the middle of the body; break 2 inside the resumed response's header frame. The default
      // maxRetries (2) allows both.
      proxy.cut([Math.floor(total * 0.7), 20]);
      const resumed = await viaProxy.sessions.open(s.id, s.token);
      expect(sameCache(live, await resumed.inspectCache()), "resumed restore differs from the live cache").toBe(true);
      expect(resumed.turns).toBe(3);
      const again = proxy.restores.slice(1);
      expect(again).toHaveLength(3);
      expect(again[0]).toBe("");
      const from = Number(new URLSearchParams(again[1]).get("from"));
      expect(from % CHUNK_TOKENS).toBe(0);
      expect(from).toBeGreaterThan(0);
      expect(again[2]).toBe(again[1]); // nothing arrived in between: the same slot again
      expect(new URLSearchParams(again[1]).get("to")).toBe(String(s.length));

      // One break more than maxRetries: the connection error reaches the caller.
      proxy.cut([Math.floor(total * 0.5), 20, 20]);
      await expect(viaProxy.sessions.open(s.id, s.token)).rejects.toBeInstanceOf(APIConnectionError);

      // The session gains a turn between the break and the resumed request: refuse, never mix the two versions.
      proxy.cut([Math.floor(total * 0.7)]);
      proxy.onCut(async () => {
        await s.chat({ messages: turnMessages(c, 1), maxTokens: 4 });
      });
      await expect(viaProxy.sessions.open(s.id, s.token)).rejects.toMatchObject({ name: "RuntimeError", code: "out_of_sync" });
      proxy.onCut(null);
      const fresh = await viaProxy.sessions.open(s.id, s.token);
      expect(sameCache(await s.inspectCache(), await fresh.inspectCache())).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it("should reject a wrong token with AuthenticationError and an unknown session with NotFoundError", async () => {
    const s = await client.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
    await expect(client.sessions.open(s.id, "not-a-token")).rejects.toBeInstanceOf(AuthenticationError);
    const other = await client.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
    await expect(client.store.sessions.retrieve(s.id, { token: other.token })).rejects.toMatchObject({ status: 403, code: "forbidden" });
    await client.store.sessions.delete(s.id, { token: s.token });
    await expect(client.store.sessions.retrieve(s.id, { token: s.token })).rejects.toMatchObject({ status: 404, name: "NotFoundError" });
  });
});
