// The demo's chat engine in a dedicated Web Worker (`?engine=worker`): loads the bundle (progress and Cache Storage as
// on the page), the codec, the WebGPU engine over the bundle's weights (workers have navigator.gpu) and the vision tower, then serves
// `chat.completions` to the page (client/engine/). Messages of its own: the page sends `init`, it answers `progress`,
// `ready` or `failed`; `status` → `status` (vision tower calls, for the page's stats).

import { createClient, createDecoderKernels, gpuContextOf, OrtVisionEncoder, serveChatEngine, type MessageEndpoint, type OrtNamespace } from "../index.ts";
import { loadWasmCodec } from "../../format/codec/wasm.ts";
import { loadBundleChatModel } from "../../runtime/loader/bundle-chat-model.ts";

export interface EngineInit {
  readonly type: "init";
  readonly bundleUrl: string;
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly decoder: "auto" | "cpu";
}

const scope = self as unknown as MessageEndpoint;

async function bytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function start(init: EngineInit): Promise<void> {
  const ortUrl = new URL("/ort/ort.all.min.mjs", init.baseUrl).href;
  const ort = (await import(/* @vite-ignore */ ortUrl)) as OrtNamespace & { env: { wasm: { wasmPaths: string; numThreads: number } } };
  ort.env.wasm.wasmPaths = new URL("/ort/", init.baseUrl).href;
  ort.env.wasm.numThreads = 1;
  const simd = WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]));
  const codec = await loadWasmCodec(await bytes(new URL(simd ? "/codec.simd.wasm" : "/codec.wasm", init.baseUrl).href));
  const kernels = init.decoder === "cpu" ? null : await createDecoderKernels();
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  let vision: OrtVisionEncoder | null = null;
  const shape = { cells: 16, patchDim: 192, hidden: 128 };
  const t0 = performance.now();
  const loaded = await loadBundleChatModel(init.bundleUrl, {
    codec,
    kernels,
    gpu: gpuContextOf(kernels),
    vision: async (onnx) => {
      try {
        if (!gpu || (await gpu.requestAdapter()) === null) throw new Error("no WebGPU adapter");
        vision = await OrtVisionEncoder.create(ort, onnx, shape, { executionProviders: ["webgpu"] });
      } catch {
        vision = await OrtVisionEncoder.create(ort, onnx, shape, { executionProviders: ["wasm"] });
      }
      return vision;
    },
    onProgress: (done, total) => scope.postMessage({ type: "progress", done, total }),
  });
  const tower = vision as OrtVisionEncoder | null;
  if (tower === null) throw new Error("the bundle's vision tower was not loaded");
  const client = createClient({ baseUrl: init.baseUrl, apiKey: init.apiKey, model: loaded.model, telemetry: true });
  serveChatEngine(scope, client);
  scope.addEventListener("message", (ev) => {
    if ((ev.data as { type?: unknown })?.type === "status") scope.postMessage({ type: "status", visionCalls: tower.calls });
  });
  scope.postMessage({
    type: "ready",
    stats: loaded.bundle.stats,
    ms: performance.now() - t0,
    quantization: loaded.bundle.manifest.quantization.weights,
    visionKind: tower.kind,
    decoder: loaded.model.engine ? "WebGPU engine" : kernels ? `${kernels.kind} kernels` : "CPU reference",
  });
}

const onInit = (ev: { data: unknown }) => {
  const m = ev.data as EngineInit;
  if (m?.type !== "init") return;
  scope.removeEventListener?.("message", onInit);
  start(m).catch((e: unknown) => scope.postMessage({ type: "failed", message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }));
};
scope.addEventListener("message", onInit);
