// The chat demo page: loads a model bundle (`mla-edge pack`; ?bundle=URL, default the demo server's /bundle/ = the
// converted tiny fixture) with a download progress bar, keeping its verified shards in Cache Storage so a reload
// downloads nothing but the manifest; decodes on the WebGPU engine (the whole model on the GPU over the bundle's int4
// weights; the CPU reference without an adapter or with ?decoder=cpu; vision tower = the bundle's vision.onnx on onnxruntime-web's WebGPU EP or wasm, codec in wasm);
// chats through `client.chat.completions.create({ stream: true })` over an edge session, keeps only its id + token in
// localStorage, and after a reload restores the cache from the edge instead of re-encoding the image and re-running
// the history. Shows tokens/s, cached tokens and the session's KV bytes next to the bf16 equivalent.

import type { ChatModel } from "../../runtime/chat-model.ts";
import { AuthenticationError, createClient, createDecoderKernels, gpuContextOf, NotFoundError, OrtVisionEncoder, PermissionDeniedError, RuntimeError, patchBytesToImage, type ChatCompletionContentPart, type ChatSession, type MlaEdgeCompletionInfo, WorkerEngine, type OrtNamespace, type RgbImage } from "../index.ts";
import { loadWasmCodec } from "../../format/codec/wasm.ts";
import { loadBundleChatModel } from "../../runtime/loader/bundle-chat-model.ts";
import type { LoadStats } from "../../runtime/loader/bundle-loader.ts";
import { base64ToBytes } from "../../runtime/vision/toy-tower.ts";

interface Sample {
  readonly patches_u8: string;
  readonly questions: string[];
  readonly answers: string[];
}

interface Saved {
  readonly id: string;
  readonly token: string;
  /** The chat's image as base64 RGB (shown again after a reload; never re-encoded). */
  image?: string;
  readonly log: { role: "user" | "assistant" | "meta"; text: string }[];
}

const STORAGE_KEY = "mla-edge-demo";
const DEFAULT_BUNDLE = "/bundle/";

/** What `ask` returns (the demo's own summary of a chat.completion). */
interface AskResult {
  readonly answer: string;
  readonly tokenIds: readonly number[];
  readonly finishReason: string;
  readonly usage: {
    readonly prompt_tokens: number;
    readonly completion_tokens: number;
    readonly cached_tokens: number;
    readonly ttft_ms: number;
    readonly tokens_per_second: number | null;
  };
}
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const GEOMETRY = { rows: 4, cols: 4, cellPixels: 8 };

const state: {
  image: RgbImage | null;
  imageSent: boolean;
  session: ChatSession | null;
  saved: Saved | null;
  lastUsage: AskResult["usage"] | null;
  bundle: { url: string; stats: LoadStats; ms: number } | null;
  /** `?engine=worker`: what the worker's last completion said of the session (the page holds no ChatSession then). */
  remote: MlaEdgeCompletionInfo | null;
  restoreMs: number | null;
  samples: Sample[];
  nextSample: number;
} = { image: null, imageSent: false, session: null, saved: null, lastUsage: null, bundle: null, remote: null, restoreMs: null, samples: [], nextSample: 0 };

async function bytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

function save(): void {
  if (state.saved) localStorage.setItem(STORAGE_KEY, JSON.stringify(state.saved));
  else localStorage.removeItem(STORAGE_KEY);
}

function addLog(role: "user" | "assistant" | "meta", text: string, persist = true): HTMLElement {
  const div = document.createElement("div");
  div.className = role;
  div.textContent = role === "meta" ? text : `${role}: ${text}`;
  $("log").append(div);
  if (persist && state.saved) {
    state.saved.log.push({ role, text });
    save();
  }
  return div;
}

function rgbBase64(img: RgbImage): string {
  const ch = img.channels ?? 3;
  let bin = "";
  for (let p = 0; p < img.width * img.height; p++) for (let c = 0; c < 3; c++) bin += String.fromCharCode(img.data[p * ch + c]);
  return btoa(bin);
}

function drawImage(img: RgbImage): void {
  const ctx = $<HTMLCanvasElement>("image").getContext("2d")!;
  const data = ctx.createImageData(img.width, img.height);
  const ch = img.channels ?? 3;
  for (let p = 0; p < img.width * img.height; p++) {
    for (let c = 0; c < 3; c++) data.data[p * 4 + c] = img.data[p * ch + c];
    data.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
}

function setImage(img: RgbImage): void {
  state.image = img;
  drawImage(img);
}

function stat(name: string, value: string): void {
  const dl = $("stats");
  dl.insertAdjacentHTML("beforeend", `<dt>${name}</dt><dd data-stat="${name}">${value}</dd>`);
}

function renderStats(visionKind: string, visionCalls: () => number, engine: string): void {
  $("stats").innerHTML = "";
  const s = state.session;
  const r = state.remote;
  const kv = s ? s.kvBytes : r ? { stored: r.kv_bytes, uncompressed: r.kv_bytes_bf16, device: r.kv_device_bytes } : undefined;
  stat("engine", engine);
  stat("session", s ? s.id.slice(0, 8) : (state.saved?.id.slice(0, 8) ?? "—"));
  stat("turns", String(s?.turns ?? r?.session.turns ?? 0));
  stat("tokens cached", String(s?.length ?? r?.session.tokens ?? 0));
  stat("KV stored", kv ? `${kv.stored.toLocaleString()} B` : "—");
  stat("KV bf16 equivalent (original GQA)", kv ? `${kv.uncompressed.toLocaleString()} B` : "—");
  stat("compression", kv && kv.stored > 0 ? `${(kv.uncompressed / kv.stored).toFixed(1)}×` : "—");
  stat("KV on this device (allocated)", kv ? `${kv.device.toLocaleString()} B` : "—");
  stat("restore time", state.restoreMs === null ? "—" : `${state.restoreMs.toFixed(1)} ms`);
  const rs = s?.restoreStats;
  stat("restore: fetch / decode / GPU upload", rs ? `${rs.fetchMs.toFixed(1)} / ${rs.decodeMs.toFixed(1)} / ${rs.uploadMs.toFixed(1)} ms` : "—");
  stat("TTFT", state.lastUsage ? `${state.lastUsage.ttft_ms.toFixed(1)} ms` : "—");
  stat("tokens/s", state.lastUsage?.tokens_per_second != null ? state.lastUsage.tokens_per_second.toFixed(1) : "—");
  stat("cached tokens (last turn)", state.lastUsage ? String(state.lastUsage.cached_tokens) : "—");
  stat("vision tower calls (this page)", String(visionCalls()));
  if (r) stat("restored by the last request", `${r.restored_tokens} tokens`);
  stat("vision tower", visionKind);
  const b = state.bundle;
  stat("bundle", b ? `${b.url}: ${b.stats.bytesFetched.toLocaleString()} B downloaded, ${b.stats.bytesFromCache.toLocaleString()} B from cache, ${b.ms.toFixed(0)} ms` : "—");
  const d = s?.decoderChoice;
  stat("decoder", d ? (d.path === "engine" ? "WebGPU engine (whole model)" : d.path === "kernels" ? `${d.kind} (MLA kernels)` : `CPU reference (${d.fallback})`) : (r?.decoder ?? "—"));
}

/** Where the model runs: on this page, or in the engine worker (?engine=worker). */
interface Engine {
  readonly model: ChatModel | undefined;
  readonly worker: WorkerEngine | null;
  readonly stats: LoadStats;
  readonly quantization: string;
  readonly visionKind: string;
  readonly decoder: string;
  /** Vision tower calls so far (the worker's count is refreshed after each request and on load). */
  visionCalls(): number;
  refreshVisionCalls(): Promise<void>;
}

async function startPageEngine(bundleUrl: string, cpu: boolean, onProgress: (done: number, total: number) => void): Promise<Engine> {
  const ortUrl = "/ort/ort.all.min.mjs";
  const ort = (await import(/* @vite-ignore */ ortUrl)) as OrtNamespace & { env: { wasm: { wasmPaths: string; numThreads: number } } };
  ort.env.wasm.wasmPaths = "/ort/";
  ort.env.wasm.numThreads = 1;
  const shape = { cells: 16, patchDim: 192, hidden: 128 };
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  let vision: OrtVisionEncoder | null = null;
  const makeVision = async (onnx: Uint8Array): Promise<OrtVisionEncoder> => {
    try {
      if (!gpu || (await gpu.requestAdapter()) === null) throw new Error("no WebGPU adapter");
      vision = await OrtVisionEncoder.create(ort, onnx, shape, { executionProviders: ["webgpu"] });
    } catch {
      vision = await OrtVisionEncoder.create(ort, onnx, shape, { executionProviders: ["wasm"] });
    }
    return vision;
  };
  const codecBytes = await bytes(WebAssembly.validate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11])) ? "/codec.simd.wasm" : "/codec.wasm");
  const codec = await loadWasmCodec(codecBytes);
  const kernels = cpu ? null : await createDecoderKernels();
  // the whole model on the GPU engine over the kernels' device (the bundle's int4 bytes bound as they are)
  const loaded = await loadBundleChatModel(bundleUrl, { vision: makeVision, codec, kernels, gpu: gpuContextOf(kernels), onProgress });
  const tower = vision as OrtVisionEncoder | null;
  if (tower === null) throw new Error("the bundle's vision tower was not loaded");
  return {
    model: loaded.model,
    worker: null,
    stats: loaded.bundle.stats,
    quantization: loaded.bundle.manifest.quantization.weights,
    visionKind: tower.kind,
    decoder: loaded.model.engine ? "WebGPU engine" : kernels ? `${kernels.kind} kernels` : "CPU reference",
    visionCalls: () => tower.calls,
    refreshVisionCalls: async () => undefined,
  };
}

async function startWorkerEngine(bundleUrl: string, apiKey: string, cpu: boolean, onProgress: (done: number, total: number) => void): Promise<Engine> {
  const worker = new Worker("/engine-worker.js", { type: "module", name: "mla-edge-engine" });
  const ready = await new Promise<{ stats: LoadStats; quantization: string; visionKind: string; decoder: string }>((resolve, reject) => {
    worker.addEventListener("error", (e) => reject(new Error(`engine worker: ${e.message}`)));
    worker.addEventListener("message", (ev: MessageEvent) => {
      const m = ev.data as { type: string; done?: number; total?: number; message?: string };
      if (m.type === "progress") onProgress(m.done!, m.total!);
      else if (m.type === "ready") resolve(ev.data as { stats: LoadStats; quantization: string; visionKind: string; decoder: string });
      else if (m.type === "failed") reject(new Error(`engine worker: ${m.message}`));
    });
    worker.postMessage({ type: "init", bundleUrl, baseUrl: location.origin, apiKey, decoder: cpu ? "cpu" : "auto" });
  });
  let calls = 0;
  worker.addEventListener("message", (ev: MessageEvent) => {
    const m = ev.data as { type: string; visionCalls?: number };
    if (m.type === "status") calls = m.visionCalls!;
  });
  return {
    model: undefined,
    worker: new WorkerEngine(worker),
    stats: ready.stats,
    quantization: ready.quantization,
    visionKind: ready.visionKind,
    decoder: ready.decoder,
    visionCalls: () => calls,
    refreshVisionCalls: async () => {
      const got = new Promise<void>((resolve) => {
        const on = (ev: MessageEvent) => {
          if ((ev.data as { type?: string }).type !== "status") return;
          worker.removeEventListener("message", on);
          resolve();
        };
        worker.addEventListener("message", on);
      });
      worker.postMessage({ type: "status" });
      await got;
    },
  };
}

async function main(): Promise<void> {
  const cfg = (await (await fetch("/config.json")).json()) as { apiKey: string };
  const params = new URLSearchParams(location.search);
  const useWorker = params.get("engine") === "worker";
  // The model bundle: streamed with progress, verified, cached in Cache Storage (a reload fetches only the manifest).
  const bundleUrl = new URL(params.get("bundle") ?? DEFAULT_BUNDLE, location.href).href;
  $<HTMLInputElement>("bundle-url").value = bundleUrl;
  $<HTMLFormElement>("bundle-form").onsubmit = (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams(location.search);
    q.set("bundle", $<HTMLInputElement>("bundle-url").value.trim() || DEFAULT_BUNDLE);
    location.search = q.toString();
  };
  const bar = $<HTMLProgressElement>("download");
  const onProgress = (done: number, total: number) => {
    bar.max = Math.max(1, total);
    bar.value = done;
    $("download-text").textContent = `${done.toLocaleString()} / ${total.toLocaleString()} B`;
  };
  const t0 = performance.now();
  $("status").textContent = `downloading the model bundle${useWorker ? " (in the engine worker)" : ""}…`;
  let engine: Engine;
  if (useWorker) engine = await startWorkerEngine(bundleUrl, cfg.apiKey, params.get("decoder") === "cpu", onProgress);
  else engine = await startPageEngine(bundleUrl, params.get("decoder") === "cpu", onProgress);
  state.bundle = { url: bundleUrl, stats: engine.stats, ms: performance.now() - t0 };
  const stats = engine.stats;
  $("download-text").textContent =
    `${(stats.bytesFetched + stats.bytesFromCache).toLocaleString()} B: ${stats.bytesFetched.toLocaleString()} downloaded, ${stats.bytesFromCache.toLocaleString()} from Cache Storage (${engine.quantization} weights)`;
  const model = engine.model;
  // Opt-in timing reports: the operator dashboard (/dashboard on the edge) shows the demo's TTFT, TPOT and restores.
  const client = useWorker
    ? createClient({ baseUrl: location.origin, apiKey: cfg.apiKey, engine: engine.worker! })
    : createClient({ baseUrl: location.origin, apiKey: cfg.apiKey, model, telemetry: true });
  state.samples = (await (await fetch("/samples.json")).json()) as Sample[];
  const refresh = () => renderStats(engine.visionKind, () => engine.visionCalls(), useWorker ? "Web Worker" : "this page");

  const raw = localStorage.getItem(STORAGE_KEY);
  if (raw !== null && useWorker) {
    // the engine worker restores the session on the next question (mla_edge.session); nothing to prefill then
    const saved = JSON.parse(raw) as Saved;
    state.saved = saved;
    state.imageSent = saved.log.some((l) => l.role === "assistant");
    if (saved.image) setImage({ width: 32, height: 32, data: base64ToBytes(saved.image), channels: 3 });
    for (const l of saved.log) addLog(l.role, l.text, false);
    addLog("meta", `session ${saved.id.slice(0, 8)}: the engine worker restores it from the edge with your next question`, false);
  } else if (raw !== null) {
    const saved = JSON.parse(raw) as Saved;
    try {
      // A session another tab changed while this restore was resumed is simply opened again.
      state.session = await client.sessions.open(saved.id, saved.token).catch((e: unknown) => {
        if (e instanceof RuntimeError && e.code === "out_of_sync") return client.sessions.open(saved.id, saved.token);
        throw e;
      });
      state.saved = saved;
      state.restoreMs = state.session.restoreStats?.ms ?? null;
      state.imageSent = state.session.turns > 0;
      if (saved.image) setImage({ width: 32, height: 32, data: base64ToBytes(saved.image), channels: 3 });
      for (const l of saved.log) addLog(l.role, l.text, false);
      addLog("meta", `restored ${state.session.length} tokens (${state.session.restoreStats?.bytes ?? 0} B) from the edge in ${state.restoreMs?.toFixed(1)} ms`, false);
    } catch (e) {
      // Forget the session only when the store says it is gone (expired, deleted) or the token no longer opens it; a
      // network failure keeps it for the next reload.
      if (e instanceof NotFoundError || e instanceof AuthenticationError || e instanceof PermissionDeniedError) {
        localStorage.removeItem(STORAGE_KEY);
        addLog("meta", `the saved session is gone (${String(e)}); a new one starts with your next question`, false);
      } else {
        addLog("meta", `could not restore the saved session (kept: reload to try again): ${String(e)}`, false);
      }
    }
  }

  const useSample = (i: number) => {
    const s = state.samples[i % state.samples.length];
    setImage(patchBytesToImage(base64ToBytes(s.patches_u8), GEOMETRY));
    ($("question") as HTMLInputElement).placeholder = s.questions[0];
  };
  $("sample").onclick = () => useSample(state.nextSample++);
  $<HTMLInputElement>("upload").onchange = async (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (!f) return;
    const bmp = await createImageBitmap(f);
    const c = new OffscreenCanvas(32, 32);
    const ctx = c.getContext("2d")!;
    ctx.drawImage(bmp, 0, 0, 32, 32);
    const d = ctx.getImageData(0, 0, 32, 32);
    setImage({ width: 32, height: 32, data: d.data, channels: 4 });
  };
  $("reset").onclick = () => {
    state.saved = null;
    state.session = null;
    state.remote = null;
    state.imageSent = false;
    state.lastUsage = null;
    state.restoreMs = null;
    save();
    $("log").innerHTML = "";
    refresh();
  };

  async function ask(question: string): Promise<AskResult> {
    if (state.saved === null && state.image === null) throw new Error("make or upload an image first");
    const content: ChatCompletionContentPart[] = [];
    const withImage = !state.imageSent && state.image !== null;
    if (withImage) content.push({ type: "image", image: state.image! });
    content.push({ type: "text", text: question });
    addLog("user", question);
    const line = addLog("assistant", "", false);
    const s = state.saved;
    // Only the new turn: the session on the edge (restored into this page's cache) holds the history.
    const stream = await client.chat.completions.create({
      messages: [{ role: "user", content }],
      stream: true,
      stream_options: { include_usage: true },
      temperature: 0,
      max_tokens: 4,
      mla_edge: s === null ? { codec: { bits: 4, group: 32, axis: "token", rope: "int8" }, chunk_tokens: 16 } : { session: { id: s.id, token: s.token } },
    });
    let text = "";
    let finishReason = "";
    let ids: readonly number[] = [];
    let usage: AskResult["usage"] | null = null;
    for await (const chunk of stream) {
      const info = chunk.mla_edge;
      if (info?.session && state.saved === null) {
        // the new session exists on the edge now: remember it before the answer is in
        state.session = client.sessionPool.get(info.session.id, info.session.token) ?? null;
        state.saved = { id: info.session.id, token: info.session.token, log: [{ role: "user", text: question }] };
        if (withImage) state.saved.image = rgbBase64(state.image!);
        save();
      }
      const choice = chunk.choices[0];
      if (choice?.delta.content) {
        text += choice.delta.content;
        line.textContent = `assistant: ${text}`;
      }
      if (choice?.finish_reason) finishReason = choice.finish_reason;
      if (chunk.usage && info?.completion_ids) {
        ids = info.completion_ids;
        if (useWorker) state.remote = info as MlaEdgeCompletionInfo;
        usage = {
          prompt_tokens: chunk.usage.prompt_tokens,
          completion_tokens: chunk.usage.completion_tokens,
          cached_tokens: chunk.usage.prompt_tokens_details.cached_tokens,
          ttft_ms: info.ttft_ms ?? 0,
          tokens_per_second: info.tokens_per_second ?? null,
        };
      }
    }
    if (usage === null) throw new Error("the completion ended without its usage");
    if (withImage && state.saved && state.saved.image === undefined) state.saved.image = rgbBase64(state.image!);
    state.imageSent = true;
    state.lastUsage = usage;
    state.saved!.log.push({ role: "assistant", text });
    save();
    await engine.refreshVisionCalls();
    refresh();
    return { answer: text, tokenIds: ids, finishReason, usage };
  }

  $<HTMLFormElement>("ask").onsubmit = (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>("question");
    const q = input.value.trim() || input.placeholder;
    input.value = "";
    ask(q).catch((e) => addLog("meta", `error: ${String(e)}`, false));
  };
  if (state.image === null && state.saved === null) useSample(state.nextSample++);
  refresh();
  ($("send") as HTMLButtonElement).disabled = false;
  $("status").textContent = `ready (engine: ${useWorker ? "Web Worker" : "this page"}, vision: ${engine.visionKind}, decoder: ${engine.decoder})`;

  // Hooks for the browser e2e test (tests/e2e/chromium.test.ts) and for poking at the demo from the console.
  (window as unknown as { mlaDemo: unknown }).mlaDemo = {
    ask,
    useSample,
    client,
    model,
    state: () => ({
      engine: useWorker ? "worker" : "page",
      sessionId: state.session?.id ?? (useWorker ? (state.saved?.id ?? null) : null),
      turns: state.session?.turns ?? state.remote?.session.turns ?? 0,
      tokens: state.session?.length ?? state.remote?.session.tokens ?? 0,
      restoreMs: state.restoreMs,
      restoredTokens: state.session?.restoreStats?.tokens ?? state.remote?.restored_tokens ?? 0,
      visionCalls: engine.visionCalls(),
      visionKind: engine.visionKind,
      bundle: state.bundle,
      lastUsage: state.lastUsage,
      decoder: state.session?.decoderChoice ?? null,
      restore: state.session?.restoreStats ?? null,
      kv: state.session?.kvBytes ?? (state.remote ? { stored: state.remote.kv_bytes, uncompressed: state.remote.kv_bytes_bf16, device: state.remote.kv_device_bytes } : null),
      remote: state.remote,
    }),
  };
}

const ready = main().catch((e: unknown) => {
  $("status").textContent = `failed: ${String(e)}`;
  throw e;
});
(window as unknown as { mlaDemoReady: Promise<void> }).mlaDemoReady = ready;
