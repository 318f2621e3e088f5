// Browser bundle for the Chromium GPU-engine test: loads a packed bundle served under /bundle/ into GPU buffers
// (loadEngineBundle), runs a token sequence through the engine (slots seal with the JS reference codec) and returns
// the logits of every row and the sampled ids.
import { GpuContext } from "../../kernels/gpu-context.ts";
import { referenceCodec } from "../../format/codec/reference.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import { loadEngineBundle } from "../../runtime/gpu/bundle-weights.ts";
import { GpuEngine } from "../../runtime/gpu/engine.ts";

async function runEngine(prompt: number[], feed: number[], codecParams: CodecParams, chunkTokens: number): Promise<unknown> {
  const ctx = await GpuContext.create();
  const b = await loadEngineBundle(ctx, new URL("/bundle", location.href).href, { cache: null });
  const engine = await GpuEngine.create(ctx, b.shape, { weights: b.weights, codec: referenceCodec, codecParams, chunkTokens, initialCapacity: 256 });
  const logits: number[][] = [];
  const ids: number[] = [];
  let r = await engine.append(prompt, {}, { temperature: 0 }, true);
  logits.push(Array.from(r.logits!));
  ids.push(r.next);
  for (const tok of feed) {
    r = await engine.append([tok], {}, { temperature: 0 }, true);
    logits.push(Array.from(r.logits!));
    ids.push(r.next);
  }
  const info = ctx.device.adapterInfo;
  const out = { adapter: info ? `${info.vendor} ${info.architecture}` : "", logits, ids, submissions: engine.submissions, memory: engine.memory };
  engine.dispose();
  b.weights.destroy();
  return out;
}

(globalThis as unknown as { runEngine: typeof runEngine }).runEngine = runEngine;
