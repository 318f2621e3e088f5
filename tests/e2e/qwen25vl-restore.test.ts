// Issue 17 item 8 on fixtures/qwen25vl-mini, against the real edge store (wrangler's workerd, as restore-http.test.ts
// runs it): the full-rank MLA conversion (`mla-edge convert`) through the SDK with a quantized latent cache (int4, slots
// sealed within and across turns). Turn 1 has an image; a session restored from the edge after turn 1 (a "page
// reload": a new chat opened from id + token) answers turn 2 exactly like the uninterrupted session (same ids, same
// logits, bit-identical cache), without calling the vision tower again, and continues at the same M-RoPE position: the
// rope delta of turn 1's image (reference.json two_turn turn1.rope_deltas) carries over the restore.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type ChatCompletion, type InputMessage, type MlaEdge } from "../../client/index.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { loadNodeCodec } from "../../format/codec/wasm.node.ts";
import { loadChatModelDir } from "../../runtime/chat-model.node.ts";
import { nodeImageLoader } from "../../runtime/inputs/processor.node.ts";
import type { MlaCacheSnapshot } from "../../runtime/mla/attention.ts";
import { runCli } from "../cli/run-cli.ts";
import { loadReference, refCase, type RefCase } from "../runtime/qwen25vl-fixture.ts";
import { startEdgeServer, type EdgeServer } from "./edge-server.ts";

const MINI = fileURLToPath(new URL("../../fixtures/qwen25vl-mini/", import.meta.url));
const CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
const CHUNK_TOKENS = 16; // turn 1 is 39 prompt tokens + answer: slots seal within turn 1 and across the turns

let edge: EdgeServer;
let client: MlaEdge;
let tmp: string;
let c: RefCase;

beforeAll(async () => {
  c = refCase(loadReference(), "two_turn");
  tmp = await mkdtemp(join(tmpdir(), "mla-edge-qwen-restore-"));
  const mlaDir = join(tmp, "mini-mla");
  const r = await runCli(["convert", "--model", MINI, "--out", mlaDir, "--strategy", "high", "--rope-dims", "16", "--svd", "none", "--json"]);
  if (r.code !== 0) throw new Error(r.stderr);
  edge = await startEdgeServer();
  client = createClient({ baseUrl: edge.url, apiKey: edge.apiKey, model: await loadChatModelDir(mlaDir, { codec: loadNodeCodec() }) });
}, 180_000);

afterAll(async () => {
  await edge?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function sameCache(a: MlaCacheSnapshot, b: MlaCacheSnapshot): boolean {
  if (a.length !== b.length || a.modality.some((m, i) => m !== b.modality[i])) return false;
  const eq = (x: Float32Array, y: Float32Array) => x.length === y.length && Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y.buffer, y.byteOffset, y.byteLength)) === 0;
  return a.layers.every((l, i) => eq(l.latent, b.layers[i].latent) && eq(l.kRope, b.layers[i].kRope));
}

describe("qwen25vl-mini: a 2-turn chat whose turn 1 is restored from the edge store", () => {
  it("answers turn 2 like the uninterrupted session, at the same M-RoPE positions", async () => {
    const model = client.model!;
    const messages = (c as unknown as { messages: InputMessage[] }).messages;
    const turn1: InputMessage[] = [messages[0]]; // user: [gradient_252x56.png] "What does this strip show?"
    const turn2: InputMessage[] = [messages[2]]; // user: "How many blocks are there?"
    const params = { maxTokens: 12, topLogits: 20, loadImage: nodeImageLoader(MINI) };

    const a = await client.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
    const b = await client.sessions.create({ codec: CODEC, chunkTokens: CHUNK_TOKENS });
    const r1a = await a.complete({ messages: turn1, ...params });
    const r1b = await b.complete({ messages: turn1, ...params });
    expect(r1b.tokenIds).toEqual(r1a.tokenIds);
    // turn 1's prompt and rope delta are the reference's (the image's 18 tokens on a 2×9 merged grid: delta −9)
    expect(r1a.usage.prompt_tokens).toBe(c.turn1!.input_ids_len);
    expect(a.nextPosition - a.length).toBe(c.turn1!.rope_deltas);
    expect(a.length).toBeGreaterThan(2 * CHUNK_TOKENS); // sealed (quantized) slots exist before the restore

    const visionBefore = model.vision.calls;
    const restored = await client.sessions.open(b.id, b.token);
    expect(model.vision.calls).toBe(visionBefore);
    expect(restored.length).toBe(a.length);
    expect(restored.nextPosition).toBe(a.nextPosition);
    expect(sameCache(await a.inspectCache(), await restored.inspectCache())).toBe(true);

    const r2a: ChatCompletion = await a.complete({ messages: turn2, ...params });
    const r2b: ChatCompletion = await restored.complete({ messages: turn2, ...params });
    // turn 2's new tokens are what the reference's two_turn prompt has after turn 1's answer and <|im_end|> \n
    expect(r2a.usage.prompt_tokens).toBe(c.num_tokens - (c.turn1!.input_ids_len + c.turn1!.answer_ids.length + 2));
    expect(r2b.usage.cached_tokens).toBe(restored.restoreStats!.tokens);
    expect(r2b.tokenIds).toEqual(r2a.tokenIds);
    expect(r2b.topLogits).toEqual(r2a.topLogits);
    expect(r2b.message.content).toBe(r2a.message.content);
    expect(restored.nextPosition).toBe(a.nextPosition);
    expect(a.nextPosition - a.length).toBe(c.turn1!.rope_deltas); // text-only turn 2: the delta stays
    expect(sameCache(await a.inspectCache(), await restored.inspectCache())).toBe(true);
    for (const s of [a, b]) await client.store.sessions.delete(s.id, { token: s.token });
  }, 300_000);
});
