// One chat over an edge-stored latent cache: each turn runs the vision tower on new images, prefills only the new
// tokens, generates (streamed) on the GPU engine (the whole model on WebGPU, runtime/gpu/), the WebGPU attention kernels
// or the CPU reference, and uploads the turn's chunks (slots sealed as they filled); `open` streams the stored chunks
// into the decoder cache (packed words straight into the GPU cache) and continues at the saved M-RoPE position, with no
// vision-tower call and no prefill of earlier turns.

import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, specHashHex } from "../../format/hash/spec-hash.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import type { AppendControl, Manifest, MediaSpan, SessionStorage } from "../../format/wire/messages.ts";
import type { ClientTurnReport } from "../../format/telemetry/client-report.ts";
import { plannedChunkBytes } from "../../format/chunk/index.ts";
import { bf16GqaBytes } from "../../format/size/bytes-per-token.ts";
import { createMlaSession } from "../../runtime/create-session.ts";
import { argmaxExcluding, DecoderSession } from "../../runtime/decoder-session.ts";
import type { MlaAttentionBackend, MlaCacheSnapshot } from "../../runtime/mla/attention.ts";
import { MlaKernelAttentionBackend } from "../../runtime/mla/kernel-attention.ts";
import { codecSlotQuantizer, SlotSealing } from "../../runtime/mla/slot-sealing.ts";
import { chooseDecoder, sharedCacheLayout, type DecoderChoice } from "../../runtime/decoder-kernels.ts";
import { ropeIndexPositions, tokenModalities, type ImageGrid } from "../../runtime/rope-index.ts";
import { Stream } from "../core/stream.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import type { SessionStore } from "../../runtime/cache-store.ts";
import { RuntimeError } from "../../runtime/errors.ts";
import type { ChatUsage } from "../../runtime/inputs/messages.ts";
import type { ImageLoader, InputMessage } from "../../runtime/inputs/processor.ts";
import { decodeBrowserImage } from "../../runtime/inputs/image-decode.ts";
import { Sampler, topLogits, type SamplingParams } from "../../runtime/sampler.ts";
import { CacheAssembler, SessionCache, SnapshotSink, tokenMajorPositions, type PackedChunk, type RestoreSink } from "../../runtime/session-cache.ts";
import type { EngineSampling, GpuEngine } from "../../runtime/gpu/engine.ts";

export interface ChatParams {
  /**
   * This turn's new messages (OpenAI-style; earlier turns are in the session's cache): text parts, `image` parts with
   * pixels, `image_url` parts resolved by `loadImage`. The model's chat template renders them as the continuation of
   * the conversation.
   */
  readonly messages: readonly InputMessage[];
  /**
   * Resolves `image_url` parts to pixels. Default in a browser: decodeBrowserImage (fetch + createImageBitmap); in Node
   * pass runtime/inputs/processor.node.ts nodeImageLoader (data: URLs and files).
   */
  readonly loadImage?: ImageLoader;
  /** Also return the N largest logits at the first generated position, [id, value] descending (as `mla-edge generate --json`). */
  readonly topLogits?: number;
  /** true: a Stream of token events ending with `done`; false/absent: a Promise of the completion. */
  readonly stream?: boolean;
  /** Generated tokens at most (the stop token included). Default 64. */
  readonly maxTokens?: number;
  readonly signal?: AbortSignal;
  /**
   * How the next token is chosen (runtime/sampler.ts: temperature, top-k, top-p, seed; a fresh Sampler per turn, so a
   * seed reproduces the turn). Absent or temperature 0: greedy. The template's banned ids (pad, bos, vision) are never chosen.
   */
  readonly sampling?: SamplingParams;
  /** Added to the logits of these ids before choosing (OpenAI's logit_bias; −100 all but bans an id, e.g. the end token). */
  readonly logitBias?: ReadonlyMap<number, number>;
  /**
   * Asked after each generated token once its `token` event was consumed (so a stream reader can update state the
   * check reads): true ends the answer there, as the end token would (`finishReason` "stop"). Used for stop strings.
   */
  readonly stop?: (generated: readonly number[]) => boolean;
  /**
   * Feed these ids as the assistant's answer instead of generating (replaying a known history into a new session):
   * token by token like generation, closed with the end token. `maxTokens` and `stop` do not apply.
   */
  readonly replay?: readonly number[];
}

/** Why an answer ended: the end token or a `stop` check ("stop"), or `maxTokens` ("length"). */
export type FinishReason = "stop" | "length";

export type ChatEvent =
  /** `text`: what the token adds to the answer's text (the deltas concatenate to `message.content`; "" for a stop token). */
  | { readonly type: "token"; readonly id: number; readonly text: string }
  | {
      readonly type: "done";
      readonly message: { readonly role: "assistant"; readonly content: string };
      readonly tokenIds: readonly number[];
      readonly usage: ChatUsage;
      readonly finishReason: FinishReason;
      readonly topLogits?: [number, number][];
    };

export interface ChatCompletion {
  readonly message: { readonly role: "assistant"; readonly content: string };
  readonly tokenIds: readonly number[];
  readonly usage: ChatUsage;
  readonly finishReason: FinishReason;
  /** With `topLogits: N`: the N largest logits at the first generated position. */
  readonly topLogits?: [number, number][];
}

/** What the last restore cost (for the demo page and the benchmark). */
export interface RestoreStats {
  readonly tokens: number;
  readonly chunks: number;
  readonly bytes: number;
  readonly ms: number;
  /** Waiting for the store's stream (network + server). */
  readonly fetchMs: number;
  /** Chunk decoding and checks; on the CPU decoder also dequantizing into its f32 cache. */
  readonly decodeMs: number;
  /** Writing packed words and tail rows into the kernels' cache, until the device has them (0 on the CPU decoder). */
  readonly uploadMs: number;
  /** Which decoder the restored cache went into. */
  readonly decoder: DecoderChoice["kind"];
}

export interface ChatSessionOptions {
  readonly codec: CodecParams;
  readonly chunkTokens: number;
  /** Default "quantized". */
  readonly storage?: SessionStorage;
  /** Receives each committed turn's timing report (opt-in client telemetry, client/telemetry/). */
  readonly onReport?: (report: ClientTurnReport) => void;
}

/**
 * The text each generated token adds to the answer: the decoded answer so far minus what was handed out, holding back
 * an incomplete UTF-8 sequence (a byte-level BPE token may end inside a character). The deltas concatenate to the
 * message's content.
 */
class TextDelta {
  private readonly ids: number[] = [];
  private given = "";
  constructor(private readonly decode: (ids: readonly number[]) => string) {}
  push(id: number): string {
    this.ids.push(id);
    const text = this.decode(this.ids);
    if (text.endsWith("\uFFFD")) return "";
    // a decoder that rewrote earlier text (rare): hand out only what follows the common prefix
    let k = 0;
    while (k < text.length && k < this.given.length && text[k] === this.given[k]) k++;
    this.given = text;
    return text.slice(k);
  }
}

/** In a browser (createImageBitmap exists): image_url parts are fetched and decoded there; elsewhere none (pass loadImage). */
function defaultImageLoader(): ImageLoader | undefined {
  return typeof (globalThis as { createImageBitmap?: unknown }).createImageBitmap === "function" ? (url) => decodeBrowserImage(url) : undefined;
}

/** One macrotask turn (setImmediate in Node: after pending I/O callbacks; setTimeout(0) elsewhere). */
function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (cb: () => void) => unknown };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

/** What one append gave back: the last token's logits (when read) and, on the GPU engine, the id it sampled (-1: none). */
interface Fed {
  readonly logits: Float32Array | null;
  readonly next: number;
}

export class ChatSession {
  /** The GPU engine when the session decodes on it (`choice.path` "engine"); made at the first turn or restore. */
  private engine: GpuEngine | null = null;
  private decoder!: DecoderSession;
  private attention!: MlaAttentionBackend | MlaKernelAttentionBackend;
  private sealing!: SlotSealing;
  private choice!: DecoderChoice;
  private cache!: SessionCache;
  /** Cache length at the end of each known turn (turn 0 = empty). */
  private turnEnds = new Map<number, number>([[0, 0]]);
  private head = 0;
  private restoredTokens = 0;
  /**
   * Why the last restore did not finish, until one does: the cache was reset for it, so a turn now would answer
   * without the history (and only fail at upload, 409). Turns are refused instead.
   */
  private unfinishedRestore: string | null = null;
  /** Bytes of the latest chunks of each slot (what a full restore returns). */
  private slotBytes = new Map<number, number>();
  private busy = false;
  private lastRestore: RestoreStats | null = null;
  /** The latest restore until a turn's report carries it. */
  private unreportedRestore: RestoreStats | null = null;

  private constructor(
    readonly model: ChatModel,
    readonly store: SessionStore,
    private readonly options: ChatSessionOptions,
  ) {
    this.reset();
  }

  /** A chat over a new, empty edge session created with `options`. */
  static fresh(model: ChatModel, store: SessionStore, options: ChatSessionOptions): ChatSession {
    return new ChatSession(model, store, options);
  }

  /** Restores a stored session: reads its manifest, streams every chunk into the decoder cache. */
  static async open(model: ChatModel, store: SessionStore, signal?: AbortSignal, onReport?: (report: ClientTurnReport) => void): Promise<ChatSession> {
    const manifest = await store.manifest(signal);
    const expected = specHashHex(model.spec);
    if (manifest.specHash !== expected) {
      throw new RuntimeError("bad_model", `session ${store.id} stores the cache of spec ${manifest.specHash}, this model's is ${expected}`);
    }
    if (manifest.model.id !== model.ref.id || manifest.model.conversion !== model.ref.conversion) {
      // same geometry, other weights: the stored latents would be meaningless to this model
      throw new RuntimeError("bad_model", `session ${store.id} holds the cache of ${manifest.model.id} (${manifest.model.conversion}), not of ${model.ref.id} (${model.ref.conversion})`);
    }
    const s = new ChatSession(model, store, { codec: manifest.codec, chunkTokens: manifest.chunkTokens, storage: manifest.storage, onReport });
    s.enter();
    try {
      await s.restoreUnlocked(signal, manifest);
    } finally {
      s.busy = false;
    }
    return s;
  }

  get id(): string {
    return this.store.id;
  }

  /** The session's capability token: keep it with the id to `open` the session after a reload. */
  get token(): string {
    return this.store.token;
  }

  /** Turns committed to the edge. */
  get turns(): number {
    return this.head;
  }

  /** Tokens in the cache. */
  get length(): number {
    return this.onEngine ? (this.engine?.length ?? 0) : this.decoder.length;
  }

  /**
   * The M-RoPE position the next text token gets: length + the rope delta of the images so far (get_rope_index). A
   * restored session derives it from the stored tokens' positions and continues from it.
   */
  get nextPosition(): number {
    return this.onEngine ? (this.engine?.nextPosition ?? 0) : this.decoder.nextPosition;
  }

  private get onEngine(): boolean {
    return this.choice.path === "engine";
  }

  get restoreStats(): RestoreStats | null {
    return this.lastRestore;
  }

  /**
   * Bytes the edge stores for this session, what the same tokens take as bf16 K/V of the original model, and what this
   * session's KV cache holds allocated on its device (GPU buffers of the kernels, or host rows of the CPU decoder).
   */
  get kvBytes(): { stored: number; uncompressed: number; device: number } {
    let stored = 0;
    for (const b of this.slotBytes.values()) stored += b;
    const s = this.model.spec;
    const device = this.onEngine ? (this.engine?.memory.cache ?? 0) : this.attention.cacheBytes;
    return { stored, uncompressed: bf16GqaBytes(s, this.length, s.layers), device };
  }

  /** Which decoder this session runs (WebGPU kernels, their CPU fallback, or the CPU reference) and why. */
  get decoderChoice(): DecoderChoice {
    return this.choice;
  }

  /**
   * A copy of the decoder's latent cache (every layer) as attention reads it, e.g. to compare a restored session with
   * the original. On the kernels, sealed slots come back through the dequantize kernel.
   */
  async inspectCache(): Promise<MlaCacheSnapshot> {
    if (this.onEngine) {
      const engine = await this.ensureEngine();
      return engine.exportCache();
    }
    return this.attention.exportCache();
  }

  /** Frees the decoder's GPU cache now (otherwise it goes when the session is garbage-collected); the session is unusable after. */
  dispose(): void {
    if (this.attention instanceof MlaKernelAttentionBackend) this.attention.destroy();
    this.engine?.dispose();
    this.engine = null;
  }

  /** Runs one turn: with `stream: true` a Stream of each generated token, then a `done` event with the usage. */
  chat(params: ChatParams & { readonly stream: true }): Stream<ChatEvent>;
  chat(params: ChatParams & { readonly stream?: false }): Promise<ChatCompletion>;
  chat(params: ChatParams): Stream<ChatEvent> | Promise<ChatCompletion> {
    return params.stream === true ? this.stream(params) : this.complete(params);
  }

  /** The streaming form of `chat`. */
  stream(params: ChatParams): Stream<ChatEvent> {
    const controller = new AbortController();
    if (params.signal) {
      if (params.signal.aborted) controller.abort();
      else params.signal.addEventListener("abort", () => controller.abort(), { once: true });
    }
    return new Stream<ChatEvent>(() => this.runTurn(params, controller.signal), controller);
  }

  /** Runs one turn to the end and returns the answer and usage. */
  async complete(params: ChatParams): Promise<ChatCompletion> {
    for await (const ev of this.stream(params)) {
      if (ev.type === "done") return { message: ev.message, tokenIds: ev.tokenIds, usage: ev.usage, finishReason: ev.finishReason, ...(ev.topLogits ? { topLogits: ev.topLogits } : {}) };
    }
    throw new RuntimeError("aborted", "the turn ended without an answer");
  }

  /** A new edge session holding turns 1..turn of this one, restored into a new chat. */
  async fork(turn: number, signal?: AbortSignal): Promise<ChatSession> {
    this.checkTurn(turn);
    const { store } = await this.store.fork(turn, signal);
    return ChatSession.open(this.model, store, signal);
  }

  /**
   * Drops every turn after `turn` on the edge and in this chat. The local cache is cut in place when the cut falls in
   * a slot it still holds raw (or on a slot boundary above the last upload); otherwise it is restored from the edge.
   * Returns how: "local" or "restored".
   */
  async truncate(turn: number, signal?: AbortSignal): Promise<"local" | "restored"> {
    this.checkTurn(turn);
    this.enter();
    try {
      await this.store.truncate(turn, signal);
      const length = this.turnEnds.get(turn);
      const adopted = this.onEngine ? this.restoredTokens : this.decoder.adoptedLength;
      const local = this.unfinishedRestore === null && length !== undefined && length >= adopted;
      if (local && this.cache.canTruncate(length) && this.sealing.canTruncate(length)) {
        await this.cutLocally(turn, length);
        return "local";
      }
      await this.restoreUnlocked(signal);
      return "restored";
    } finally {
      this.busy = false;
    }
  }

  /** Re-reads the session from the edge (also what `open` does). */
  async restore(signal?: AbortSignal): Promise<RestoreStats> {
    this.enter();
    try {
      return await this.restoreUnlocked(signal);
    } finally {
      this.busy = false;
    }
  }

  private checkTurn(turn: number): void {
    if (!Number.isInteger(turn) || turn < 0 || turn > this.head) {
      throw new RuntimeError("bad_messages", `turn ${turn} is not in 0..${this.head}`);
    }
  }

  private enter(): void {
    if (this.busy) throw new RuntimeError("out_of_sync", "another turn or restore of this session is still running");
    this.busy = true;
  }

  private reset(): void {
    const o = this.options;
    const w = this.model.weights;
    const spec = this.model.spec;
    const raw = (o.storage ?? "quantized") === "raw";
    const latentWidth = spec.kvHeads * spec.dKv;
    const ropeWidth = spec.kvHeads * spec.ropeDims;
    const quantizer = raw ? null : codecSlotQuantizer(this.model.codec, o.codec, { latentWidth, ropeWidth, ropeDims: spec.ropeDims });
    if (this.attention instanceof MlaKernelAttentionBackend) this.attention.destroy();
    const engine = this.model.engine ?? null;
    const engineWhy = engine === null ? "no GPU engine on this model" : engine.unsupportedReason(o.codec, raw, o.chunkTokens);
    if (engineWhy === null) {
      // The engine keeps its cache across restores and cuts (reset, not re-created: its pipelines are compiled once).
      this.choice = { kind: "webgpu", path: "engine", fallback: null };
      this.engine?.reset();
      // Until the engine exists (ensureEngine) a sealing of the same geometry stands in: nothing writes to it.
      this.sealing = this.engine?.sealing ?? new SlotSealing(spec.layers, o.chunkTokens, latentWidth, ropeWidth, quantizer);
    } else {
      if (w === null) {
        throw new RuntimeError("bad_model", `this model lives only on the GPU engine (no host weights), which cannot run this session: ${engineWhy}`);
      }
      this.sealing = new SlotSealing(spec.layers, o.chunkTokens, latentWidth, ropeWidth, quantizer);
      this.choice = chooseDecoder(this.model.kernels, w, o.codec, raw, o.chunkTokens);
      if (engine !== null) this.choice = { ...this.choice, fallback: `GPU engine: ${engineWhy}${this.choice.fallback === null ? "" : `; ${this.choice.fallback}`}` };
    }
    if (this.choice.path === "engine" || w === null) {
      // no per-session CPU decoder (a model without host weights only ever takes the engine path, above)
    } else if (this.choice.path === "kernels" && this.model.kernels !== null) {
      this.attention = new MlaKernelAttentionBackend(w, this.model.kernels, sharedCacheLayout(this.model.kernels, w, o.codec, o.chunkTokens), this.sealing);
      this.decoder = new DecoderSession(w.config, w.shell, this.attention, { defaultImageGrid: this.model.imageGrid });
    } else {
      const { session, backend } = createMlaSession(w, "absorbed", { defaultImageGrid: this.model.imageGrid, sealing: this.sealing });
      this.decoder = session;
      this.attention = backend;
    }
    this.cache = new SessionCache(this.cacheOptions());
    this.head = 0;
    this.restoredTokens = 0;
    this.slotBytes = new Map();
    this.turnEnds = new Map([[0, 0]]);
  }

  /** The session's GPU engine, created over the model's shared weights the first time it is needed. */
  private async ensureEngine(): Promise<GpuEngine> {
    if (this.engine !== null) return this.engine;
    const factory = this.model.engine;
    if (factory == null) throw new RuntimeError("out_of_sync", "internal: the session chose the GPU engine but the model has none");
    const o = this.options;
    this.engine = await factory.create({
      codec: this.model.codec,
      codecParams: o.codec,
      chunkTokens: o.chunkTokens,
      bannedTokenIds: this.model.format.bannedIds,
      ...(this.model.imageGrid ? { defaultImageGrid: this.model.imageGrid } : {}),
    });
    this.sealing = this.engine.sealing;
    return this.engine;
  }

  /** Cuts decoder, sealing and session cache to `length` tokens = the end of `turn` (the edge was cut already). */
  private async cutLocally(turn: number, length: number): Promise<void> {
    if (this.onEngine) await (await this.ensureEngine()).truncate(length);
    else if (length < this.decoder.length) this.decoder.truncate(length);
    this.cache.truncateCommitted(length);
    this.head = turn;
    for (const t of [...this.turnEnds.keys()]) if (t > turn) this.turnEnds.delete(t);
    this.restoredTokens = Math.min(this.restoredTokens, length);
    const C = this.options.chunkTokens;
    for (const slot of [...this.slotBytes.keys()]) if (slot * C >= length) this.slotBytes.delete(slot);
    if (length % C !== 0) {
      // the edge holds that slot's raw chunk as of `turn`
      const slot = Math.floor(length / C);
      this.slotBytes.set(slot, plannedChunkBytes(this.model.spec, { sealed: false, ...this.options.codec }, length - slot * C));
    }
  }

  private cacheOptions() {
    const o = this.options;
    return { spec: this.model.spec, params: o.codec, chunkTokens: o.chunkTokens, codec: this.model.codec, storage: o.storage ?? "quantized" };
  }

  private async restoreUnlocked(signal?: AbortSignal, manifest?: Manifest): Promise<RestoreStats> {
    try {
      const stats = await this.loadFromStore(signal, manifest);
      this.unfinishedRestore = null;
      return stats;
    } catch (e) {
      this.unfinishedRestore = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      throw e;
    }
  }

  /** Resets the local cache and streams the stored session into it. */
  private async loadFromStore(signal?: AbortSignal, manifest?: Manifest): Promise<RestoreStats> {
    const t0 = now();
    this.reset();
    const engine = this.onEngine ? await this.ensureEngine() : null;
    const options = this.cacheOptions();
    const attention = this.attention;
    const kernels = engine === null && attention instanceof MlaKernelAttentionBackend ? attention : null;
    let snapshot: SnapshotSink | null = null;
    let assembler: CacheAssembler | null = null;
    let head = 0;
    let fetchMs = 0;
    let mark = now();
    for await (const ev of this.store.restore(signal)) {
      fetchMs += now() - mark;
      if (ev.type === "header") {
        if (assembler !== null) throw new RuntimeError("bad_restore", "restore stream has two headers");
        // Kernels: sealed chunks' packed words go straight into the cache as they arrive (no dequantize).
        let sink: RestoreSink;
        if (engine) sink = engine.restoreSink();
        else if (kernels) sink = { sealed: (l, start, latent, rope) => kernels.loadSealed(l, start, latent, rope), raw: () => undefined };
        else sink = snapshot = new SnapshotSink(this.model.codec, this.model.spec, ev.header.tokens);
        assembler = new CacheAssembler(options, ev.header.tokens, sink);
        head = ev.header.head;
      } else {
        if (assembler === null) throw new RuntimeError("bad_restore", "restore stream sent a chunk before its header");
        assembler.add(ev.bytes);
      }
      mark = now();
    }
    fetchMs += now() - mark;
    if (assembler === null) throw new RuntimeError("bad_restore", "restore stream ended without a header");
    const done = assembler.finish();
    const t1 = now();
    if (engine) {
      engine.adoptAssembled(done);
      await engine.flush();
    } else if (kernels) {
      kernels.finishRestore(done.tokens, done.modality, done.tail);
      await kernels.flush();
    } else if (done.tokens > 0) {
      (attention as MlaAttentionBackend).importCache(snapshot!.snapshot(done.modality));
      this.sealing.adopt(done.tokens, done.tail);
    }
    const finishMs = now() - t1;
    if (done.tokens > 0 && engine === null) this.decoder.adoptCache(done.tokens, done.nextPosition);
    this.cache.adoptRestored(done.tokens, done.tailModality, done.tailPositions);
    this.head = head;
    this.restoredTokens = done.tokens;
    this.slotBytes = new Map(done.slotBytes);
    this.turnEnds = new Map([[0, 0], [head, done.tokens]]);
    for (const t of manifest?.turns ?? []) if (t.seq <= head) this.turnEnds.set(t.seq, t.tokenStart + t.tokenCount);
    this.lastRestore = {
      tokens: done.tokens,
      chunks: done.chunks,
      bytes: done.bytes,
      ms: now() - t0,
      fetchMs,
      decodeMs: kernels || engine ? done.decodeMs : done.decodeMs + done.sinkMs + finishMs,
      uploadMs: kernels || engine ? done.sinkMs + finishMs : 0,
      decoder: this.choice.kind,
    };
    this.unreportedRestore = this.lastRestore;
    return this.lastRestore;
  }

  private async *runTurn(params: ChatParams, signal: AbortSignal): AsyncGenerator<ChatEvent> {
    if (this.unfinishedRestore !== null) {
      throw new RuntimeError("out_of_sync", `the last restore of this session did not finish (${this.unfinishedRestore}); call restore() before the next turn`);
    }
    this.enter();
    const t0 = now();
    const engine = this.onEngine ? await this.ensureEngine().catch((e: unknown) => {
      this.busy = false;
      throw e;
    }) : null;
    const startLength = this.length;
    const cfg = this.model.config;
    const maxTokens = params.maxTokens ?? 64;
    let committed = false;
    try {
      if (!Number.isInteger(maxTokens) || maxTokens < 1) throw new RuntimeError("bad_messages", `maxTokens must be a positive integer, got ${maxTokens}`);
      if (params.replay !== undefined && params.replay.length === 0) throw new RuntimeError("bad_messages", "a replayed answer needs at least one token");
      const processor = this.model.processor;
      const format = this.model.format;
      const turn = await processor.encodeTurn(params.messages, startLength > 0, { loadImage: params.loadImage ?? defaultImageLoader() });
      const fed: number[] = [];
      const media: MediaSpan[] = [];
      let imageEmbeds: Float32Array | undefined;
      const grids: ImageGrid[] = turn.images.map((im) => this.model.vision.grid(im));
      if (turn.images.length > 0) {
        imageEmbeds = await this.model.vision.encode(turn.images);
        // A media span covers every image-routed token of its image (vision start/end included).
        const pad = processor.tokens.image;
        const ids = turn.inputIds;
        const routed = tokenModalities(ids, cfg.imageRoutedTokenIds);
        for (const im of turn.images) {
          let a = im.tokenOffset;
          while (a > 0 && routed[a - 1] === 1 && ids[a - 1] !== pad) a--;
          let b = im.tokenOffset + im.numImageTokens;
          while (b < ids.length && routed[b] === 1 && ids[b] !== pad) b++;
          const px = new Uint8Array(im.pixelValues.buffer, im.pixelValues.byteOffset, im.pixelValues.byteLength);
          media.push({ hash: bytesToHex(sha256(px)), start: startLength + a, length: b - a });
        }
      }
      const V = cfg.vocabSize;
      const banned = format.bannedIds;
      const sampler = params.sampling !== undefined && params.sampling.temperature > 0 ? new Sampler(params.sampling) : null;
      const replay = params.replay;
      const bias = params.logitBias !== undefined && params.logitBias.size > 0 ? params.logitBias : undefined;
      // On the engine the LM head and the sampler run on the GPU and only the id comes back, unless the logits are
      // needed here (a logit bias, or the first position's top logits); replayed tokens need neither.
      const engineSampling: EngineSampling = { temperature: params.sampling?.temperature ?? 0, topK: params.sampling?.topK ?? 0, topP: params.sampling?.topP ?? 1, seed: params.sampling?.seed ?? 0 };
      /** "logits": the next token is picked here from the logits; "sample": by the engine; "none": no LM head. */
      const want = (first: boolean): "logits" | "sample" | "none" =>
        engine === null ? "logits" : replay !== undefined && !(first && params.topLogits !== undefined) ? "none" : bias !== undefined || (first && params.topLogits !== undefined) ? "logits" : "sample";
      const feed = async (ids: number[], mode: "logits" | "sample" | "none", embeds?: Float32Array, g: ImageGrid[] = []): Promise<Fed> => {
        let out: Fed;
        if (engine !== null) {
          const r = await engine.append(ids, { ...(embeds ? { imageEmbeds: embeds } : {}), imageGrids: g }, mode === "none" ? null : engineSampling, mode === "logits");
          this.cache.record(r.modality, tokenMajorPositions(r.positions, ids.length));
          out = { logits: r.logits, next: r.next };
        } else {
          const { positions } = ropeIndexPositions(ids, this.decoder.nextPosition, cfg.tokens.imagePad ?? -1, g);
          const logits = await this.decoder.appendAsync(ids, { imageEmbeds: embeds, imageGrids: g, logits: mode === "none" ? "none" : "last" });
          this.cache.record(tokenModalities(ids, cfg.imageRoutedTokenIds), tokenMajorPositions(positions, ids.length));
          out = { logits, next: -1 };
        }
        fed.push(...ids);
        return out;
      };

      engine?.restartSampling();
      let step = await feed(turn.inputIds, want(true), imageEmbeds, grids);
      const generated: number[] = [];
      let top: [number, number][] | undefined;
      let firstAt = 0;
      const streamed = new TextDelta((ids) => processor.decode(ids, { skipSpecialTokens: true }));
      let finishReason: FinishReason = "length";
      for (;;) {
        if (signal.aborted) throw new RuntimeError("aborted", "the turn was aborted");
        let tok: number;
        const logits = step.logits ?? new Float32Array(0);
        if (replay !== undefined) tok = replay[generated.length];
        else if (step.logits === null) tok = step.next;
        else if (sampler === null && bias === undefined) tok = argmaxExcluding(logits, logits.length - V, V, banned);
        else {
          const row = logits.slice(logits.length - V);
          for (const [id, b] of bias ?? []) if (id >= 0 && id < V) row[id] += b;
          if (sampler === null) tok = argmaxExcluding(row, 0, V, banned);
          else {
            for (const b of banned) if (b < V) row[b] = -Infinity;
            tok = sampler.next(row);
          }
        }
        if (generated.length === 0 && params.topLogits !== undefined) top = topLogits(logits.subarray(logits.length - V), params.topLogits);
        generated.push(tok);
        if (generated.length === 1) firstAt = now();
        const stop = format.stopIds.includes(tok);
        yield { type: "token", id: tok, text: stop ? "" : streamed.push(tok) };
        if (replay !== undefined) {
          if (stop || generated.length >= replay.length) {
            finishReason = "stop";
            break;
          }
        } else {
          if (stop || params.stop?.(generated) === true) {
            finishReason = "stop";
            break;
          }
          if (generated.length >= maxTokens) break;
        }
        step = await feed([tok], want(false));
      }
      const lastAt = now();
      // Close the answer as the template renders it, so the next turn's rendering continues from this cache.
      const last = generated[generated.length - 1];
      const closing = [...format.closingIds];
      const tail = !format.stopIds.includes(last) ? [last, ...closing] : closing.length > 0 ? closing : [last];
      await feed(tail, "none");
      const answerIds = generated.filter((t) => !format.stopIds.includes(t));

      // the engine's open slot rows to the host sealing, which packs the chunks
      if (engine !== null) await engine.syncHost();
      const pending = this.cache.prepareCommit(this.sealing);
      const control: AppendControl = {
        expectedSeq: this.head + 1,
        tokenIds: fed,
        modality: Array.from(tokenModalities(fed, cfg.imageRoutedTokenIds)),
        positions: this.turnPositions(startLength, fed.length),
        ...(media.length > 0 ? { media } : {}),
      };
      if (signal.aborted) throw new RuntimeError("aborted", "the turn was aborted");
      // The decode above may have blocked the event loop for seconds: let pending socket events (a keep-alive
      // connection the server closed meanwhile) be seen before the upload picks a connection.
      await yieldToEventLoop();
      const result = await this.store.append({ control, chunks: pending.chunks }, signal);
      pending.apply();
      committed = true;
      this.head = result.seq;
      this.turnEnds.set(result.seq, this.length);
      this.noteChunks(pending.chunks);
      const kv = this.kvBytes;
      const usage: ChatUsage = {
        prompt_tokens: turn.inputIds.length,
        completion_tokens: generated.length,
        cached_tokens: this.restoredTokens,
        ttft_ms: firstAt - t0,
        tpot_ms: generated.length > 1 ? (lastAt - firstAt) / (generated.length - 1) : 0,
        kv_bytes: kv.stored,
        kv_bytes_uncompressed: kv.uncompressed,
        kv_device_bytes: kv.device,
      };
      this.report(result.seq, usage, startLength);
      yield { type: "done", message: { role: "assistant", content: processor.decode(answerIds, { skipSpecialTokens: true }) }, tokenIds: generated, usage, finishReason, ...(top ? { topLogits: top } : {}) };
    } finally {
      // An aborted or failed turn leaves nothing behind: the cache returns to the last committed state.
      if (!committed) {
        if (engine !== null) {
          try {
            await engine.truncate(startLength);
          } catch (e) {
            // the GPU cache could not be cut back: the next turn must restore from the edge
            this.unfinishedRestore = `the failed turn could not be rolled back on the GPU (${e instanceof Error ? e.message : String(e)})`;
          }
        } else if (this.decoder.length > startLength) this.decoder.truncate(startLength);
        // A block that failed between layers advanced the attention caches but not the decoder: cut both.
        else this.attention.truncate(startLength);
        this.cache.rollback(startLength);
      }
      this.busy = false;
    }
  }

  /**
   * Hands the turn's report to the telemetry sink. The first turn after a restore carries the restore: its tokens that
   * this turn attended to as restored (the cache still held them when the turn began) and those it had to prefill again.
   */
  private report(seq: number, usage: ChatUsage, startLength: number): void {
    const sink = this.options.onReport;
    const restore = this.unreportedRestore;
    this.unreportedRestore = null;
    if (!sink) return;
    const reused = restore ? Math.min(restore.tokens, startLength) : 0;
    sink({
      sessionId: this.store.id,
      turnSeq: seq,
      ttftMs: usage.ttft_ms,
      ...(usage.completion_tokens > 1 ? { tpotMs: usage.tpot_ms } : {}),
      inputTokens: usage.prompt_tokens,
      outputTokens: usage.completion_tokens,
      memory: { kvCacheBytes: usage.kv_device_bytes, kvCacheTokens: this.length, kvCacheUncompressedBytes: usage.kv_bytes_uncompressed },
      ...(restore
        ? {
            restore: {
              restoredTokens: restore.tokens,
              reusedTokens: reused,
              recomputedTokens: 0,
              fetchMs: restore.fetchMs,
              decodeMs: restore.decodeMs,
              uploadMs: restore.uploadMs,
            },
          }
        : {}),
    });
  }

  /** Flattened token-major positions of the tokens [start, start + n) recorded in the cache bridge. */
  private turnPositions(start: number, n: number): number[] {
    return Array.from(this.cache.positionsOf(start, n));
  }

  private noteChunks(chunks: readonly PackedChunk[]): void {
    const fresh = new Map<number, number>();
    for (const c of chunks) fresh.set(c.slot, (fresh.get(c.slot) ?? 0) + c.bytes.length);
    for (const [slot, b] of fresh) this.slotBytes.set(slot, b);
  }
}
