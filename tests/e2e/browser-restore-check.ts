// In-page harness of the Chromium e2e test (bundled by the demo server as /restore-check.js): the Node e2e loop —
// uninterrupted vs restored-per-turn sessions — run inside the browser with the page's own runtime (ORT WebGPU/wasm
// vision, wasm codec) against the edge store behind the demo server.

import type { ChatMessage, ChatSession, MlaEdge } from "../../client/index.ts";
import type { ChatModel } from "../../client/runtime/chat-model.ts";
import { patchBytesToImage } from "../../client/runtime/image.ts";
import type { MlaCacheSnapshot } from "../../model/mla/attention.ts";
import { base64ToBytes } from "../../model/vision-tower.ts";

export interface CheckCase {
  readonly patches_u8: string;
  readonly questions: readonly string[];
  readonly answers: readonly string[];
}

export interface CheckResult {
  readonly cases: number;
  readonly turns: number;
  readonly mismatches: string[];
  readonly correct: number;
  readonly visionCallsOnRestore: number;
  readonly cachedTokenErrors: number;
  readonly cacheDiffs: number;
}

function sameCache(a: MlaCacheSnapshot, b: MlaCacheSnapshot): boolean {
  if (a.length !== b.length) return false;
  const eq = (x: Float32Array, y: Float32Array) => x.length === y.length && x.every((v, i) => Object.is(v, y[i]));
  return a.layers.every((l, i) => eq(l.latent, b.layers[i].latent) && eq(l.kRope, b.layers[i].kRope));
}

export async function runRestoreCheck(client: MlaEdge, model: ChatModel, cases: readonly CheckCase[]): Promise<CheckResult> {
  const codec = { bits: 4, group: 32, axis: "token", rope: "int8" } as const;
  const mismatches: string[] = [];
  let turns = 0;
  let correct = 0;
  let visionCallsOnRestore = 0;
  let cachedTokenErrors = 0;
  let cacheDiffs = 0;
  for (const [ci, c] of cases.entries()) {
    const image = patchBytesToImage(base64ToBytes(c.patches_u8), { rows: 4, cols: 4, cellPixels: 8 });
    const msgs = (t: number): ChatMessage[] =>
      t === 0 ? [{ role: "user", content: [{ type: "image", image }, { type: "text", text: c.questions[0] }] }] : [{ role: "user", content: c.questions[t] }];
    const a = await client.sessions.create({ codec, chunkTokens: 16 });
    let b: ChatSession = await client.sessions.create({ codec, chunkTokens: 16 });
    for (let t = 0; t < c.questions.length; t++) {
      if (t > 0) {
        const before = model.vision.calls;
        b = await client.sessions.open(b.id, b.token);
        visionCallsOnRestore += model.vision.calls - before;
        if (!sameCache(a.inspectCache(), b.inspectCache())) cacheDiffs++;
      }
      const prefix = b.length;
      const ra = await a.chat({ messages: msgs(t), maxTokens: 4 });
      const rb = await b.chat({ messages: msgs(t), maxTokens: 4 });
      if (ra.tokenIds.join() !== rb.tokenIds.join()) mismatches.push(`case ${ci} turn ${t}: ${ra.message.content} vs ${rb.message.content}`);
      if (rb.usage.cached_tokens !== (t === 0 ? 0 : prefix)) cachedTokenErrors++;
      if (rb.message.content === c.answers[t]) correct++;
      turns++;
    }
  }
  return { cases: cases.length, turns, mismatches, correct, visionCallsOnRestore, cachedTokenErrors, cacheDiffs };
}
