// `client.chat.completions.create(params)`: OpenAI's chat-completions request and response shapes (and web-llm's
// `engine.chat.completions.create`) over mla-edge's edge-stored sessions. The request's `messages` are the whole
// conversation, as OpenAI's; the `mla_edge` extension names the session that already holds its history (continue,
// or fork at a turn), so only the new turn is prefilled — the rest comes from the session's cache (restored from the
// edge once, then held by the client's session cache). The response carries the session id and token to continue
// with, and `usage.prompt_tokens_details.cached_tokens` counts the history tokens that were not prefilled.
//
// Runs on the client's chat model (`createClient({ model })`) through `ChatSession`: the same engine and the same
// session cache as `client.sessions`.

import { MlaError } from "../../format/errors.ts";
import type { CodecParams } from "../../format/codec/types.ts";
import type { SessionStorage } from "../../format/wire/messages.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import { RuntimeError } from "../../runtime/errors.ts";
import { decodeBrowserImage } from "../../runtime/inputs/image-decode.ts";
import type { RgbImage } from "../../runtime/inputs/messages.ts";
import type { InputContentPart, InputMessage } from "../../runtime/inputs/processor.ts";
import { checkSamplingParams, SamplerError, type SamplingParams } from "../../runtime/sampler.ts";
import { StopScanner } from "../../runtime/stop-sequences.ts";
import { APIUserAbortError, ConflictError } from "../core/error.ts";
import { Stream } from "../core/stream.ts";
import type { ChatSession, FinishReason } from "./chat-session.ts";
import type { SessionPool } from "./session-pool.ts";

// ---------------------------------------------------------------------------------------------------------------
// Request

export interface ChatCompletionContentPartText {
  readonly type: "text";
  readonly text: string;
}

export interface ChatCompletionContentPartImage {
  readonly type: "image_url";
  /** A data: URL, an http(s) URL, or (browsers, and Node with `decodeImage`) a Blob / File. */
  readonly image_url: { readonly url: string | Blob; readonly detail?: "auto" | "low" | "high" };
}

/** mla-edge's own part: pixels already decoded (e.g. a canvas' ImageData). */
export interface ChatCompletionContentPartPixels {
  readonly type: "image";
  readonly image: RgbImage;
}

export type ChatCompletionContentPart = ChatCompletionContentPartText | ChatCompletionContentPartImage | ChatCompletionContentPartPixels;

export interface ChatCompletionMessageParam {
  readonly role: "user" | "assistant" | "system" | "developer";
  readonly content: string | readonly ChatCompletionContentPart[] | null;
  readonly name?: string;
}

/** The mla-edge part of a request: which stored session holds the conversation's history. */
export interface MlaEdgeRequest {
  /** Continue this session (the `mla_edge.session` of an earlier response). Absent: a new session is created. */
  readonly session?: { readonly id: string; readonly token: string };
  /** With `session`: continue a new session forked from it at this turn (it keeps turns 1..fork_at). */
  readonly fork_at?: number;
  /** New sessions: the cache codec (default int4 latents, group 32, token axis, int8 rope). */
  readonly codec?: CodecParams;
  /** New sessions: tokens per sealed chunk (default 64). */
  readonly chunk_tokens?: number;
  readonly storage?: SessionStorage;
  readonly ttl_seconds?: number;
}

export interface ChatCompletionCreateParamsBase {
  /** Must name the client's model when given (its `ref.id`). */
  readonly model?: string;
  readonly messages: readonly ChatCompletionMessageParam[];
  /** Tokens generated at most (an end token included); alias of max_completion_tokens. Default 256. */
  readonly max_tokens?: number | null;
  readonly max_completion_tokens?: number | null;
  /** 0 = greedy; default 1 (OpenAI's). */
  readonly temperature?: number | null;
  /** Nucleus sampling, (0, 1]; default 1. */
  readonly top_p?: number | null;
  /** Makes sampling reproducible (an integer ≥ 0). Absent: a random seed per request. */
  readonly seed?: number | null;
  /** Up to 4 strings; generation ends before the first one, which is not returned. */
  readonly stop?: string | readonly string[] | null;
  /** Token id (as a string key, as OpenAI's) → bias in [−100, 100] added to its logit before choosing. */
  readonly logit_bias?: Readonly<Record<string, number>> | null;
  /** Only 1. */
  readonly n?: number | null;
  readonly stream?: boolean | null;
  readonly stream_options?: { readonly include_usage?: boolean } | null;
  readonly mla_edge?: MlaEdgeRequest;
}

export interface ChatCompletionCreateParamsStreaming extends ChatCompletionCreateParamsBase {
  readonly stream: true;
}

export interface ChatCompletionCreateParamsNonStreaming extends ChatCompletionCreateParamsBase {
  readonly stream?: false | null;
}

export type ChatCompletionCreateParams = ChatCompletionCreateParamsStreaming | ChatCompletionCreateParamsNonStreaming;

export interface ChatCompletionRequestOptions {
  readonly signal?: AbortSignal;
}

// ---------------------------------------------------------------------------------------------------------------
// Response

export interface CompletionUsage {
  /** Every token of the conversation before the answer: history (cached or replayed) + the new turn. */
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
  readonly prompt_tokens_details: {
    /** History tokens taken from the session's cache (restored from the edge, or held from earlier requests), not prefilled. */
    readonly cached_tokens: number;
  };
}

/** The mla-edge part of a response. */
export interface MlaEdgeCompletionInfo {
  /** The session that now holds the conversation and this answer: pass it as `mla_edge.session` to continue. */
  readonly session: { readonly id: string; readonly token: string; readonly turns: number; readonly tokens: number };
  /** The session `fork_at` forked from, else null. */
  readonly forked_from: string | null;
  /** Tokens this request restored from the edge (0 when the client already held the session). */
  readonly restored_tokens: number;
  /** History tokens this request prefilled because the session lacked them (replayed assistant turns). */
  readonly replayed_tokens: number;
  /** The generated ids (an end token included). */
  readonly completion_ids: readonly number[];
  /** Bytes the edge stores for the session; the same tokens as the original model's bf16 K/V; the device cache. */
  readonly kv_bytes: number;
  readonly kv_bytes_bf16: number;
  readonly kv_device_bytes: number;
  readonly ttft_ms: number;
  /** Generated tokens per second after the first (null with one token). */
  readonly tokens_per_second: number | null;
  readonly decoder: string;
}

export interface ChatCompletionMessage {
  readonly role: "assistant";
  readonly content: string;
  readonly refusal: null;
}

export interface ChatCompletion {
  readonly id: string;
  readonly object: "chat.completion";
  readonly created: number;
  readonly model: string;
  readonly choices: readonly [{ readonly index: 0; readonly message: ChatCompletionMessage; readonly finish_reason: FinishReason; readonly logprobs: null }];
  readonly usage: CompletionUsage;
  readonly system_fingerprint: null;
  readonly mla_edge: MlaEdgeCompletionInfo;
}

export interface ChatCompletionChunkChoice {
  readonly index: 0;
  readonly delta: { readonly role?: "assistant"; readonly content?: string };
  readonly finish_reason: FinishReason | null;
  readonly logprobs: null;
}

export interface ChatCompletionChunk {
  readonly id: string;
  readonly object: "chat.completion.chunk";
  readonly created: number;
  readonly model: string;
  /** One choice; empty in the usage chunk of `stream_options.include_usage`. */
  readonly choices: readonly ChatCompletionChunkChoice[];
  /** Only on the last chunk, with `stream_options.include_usage`. */
  readonly usage?: CompletionUsage | null;
  readonly system_fingerprint: null;
  /** On the first chunk (the session) and the finishing one (everything). */
  readonly mla_edge?: Partial<MlaEdgeCompletionInfo>;
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

export type InvalidRequestCode = "invalid_request" | "history_mismatch";

/** A request the API refuses before running anything, like OpenAI's 400 `invalid_request_error`; `param` names the field. */
export class InvalidRequestError extends MlaError<InvalidRequestCode> {
  override readonly name = "InvalidRequestError";
  constructor(
    readonly param: string | null,
    /** The message without the parameter's name. */
    readonly detail: string,
    code: InvalidRequestCode = "invalid_request",
  ) {
    super(code, param === null ? detail : `${param}: ${detail}`);
  }
}

/**
 * Where completions run when not on this thread's model: e.g. a dedicated Web Worker (client/engine/worker-engine.ts).
 * `stream` runs one request with stream semantics; it rejects (typed) before the first chunk on a bad request.
 */
export interface ChatEngine {
  stream(params: ChatCompletionCreateParams, signal: AbortSignal): Promise<AsyncIterable<ChatCompletionChunk>>;
}

// ---------------------------------------------------------------------------------------------------------------
// The resource

/** Decodes PNG/JPEG bytes (Node: `decodeImageBytes` of runtime/inputs/image-decode.node.ts). */
export type ImageBytesDecoder = (bytes: Uint8Array) => RgbImage | Promise<RgbImage>;

export interface CompletionsClient {
  readonly model: ChatModel | undefined;
  /** When set, completions run there instead of on `model`. */
  readonly engine: ChatEngine | undefined;
  readonly sessionPool: SessionPool;
  readonly decodeImage: ImageBytesDecoder | undefined;
  readonly sessions: {
    create(params: { codec: CodecParams; chunkTokens?: number; storage?: SessionStorage; ttlSeconds?: number; signal?: AbortSignal }): Promise<ChatSession>;
    open(id: string, token: string, params?: { signal?: AbortSignal }): Promise<ChatSession>;
    fork(id: string, token: string, turn: number, params?: { ttlSeconds?: number; signal?: AbortSignal }): Promise<ChatSession>;
  };
}

export const DEFAULT_SESSION_CODEC: CodecParams = { bits: 4, group: 32, axis: "token", rope: "int8" };
export const DEFAULT_MAX_TOKENS = 256;

interface Checked {
  readonly maxTokens: number;
  readonly logitBias: ReadonlyMap<number, number> | undefined;
  readonly sampling: SamplingParams;
  readonly stops: readonly string[];
  readonly includeUsage: boolean;
}

interface Turn {
  readonly messages: InputMessage[];
  /** The assistant's answer closing the turn, for a history replay; null: the turn to generate. */
  readonly answer: string | null;
}

export class Completions {
  constructor(private readonly client: CompletionsClient) {}

  /**
   * With `stream: true`: a Stream of `chat.completion.chunk`s (`break`, `stream.controller.abort()` or the options'
   * signal stop it; the turn is then rolled back and not stored). Otherwise the `chat.completion`. The promise
   * rejects before anything runs on an invalid request (InvalidRequestError) and when the session cannot be opened.
   */
  create(params: ChatCompletionCreateParamsStreaming, options?: ChatCompletionRequestOptions): Promise<Stream<ChatCompletionChunk>>;
  create(params: ChatCompletionCreateParamsNonStreaming, options?: ChatCompletionRequestOptions): Promise<ChatCompletion>;
  create(params: ChatCompletionCreateParams, options?: ChatCompletionRequestOptions): Promise<Stream<ChatCompletionChunk> | ChatCompletion>;
  async create(params: ChatCompletionCreateParams, options: ChatCompletionRequestOptions = {}): Promise<Stream<ChatCompletionChunk> | ChatCompletion> {
    const controller = new AbortController();
    const outer = options.signal;
    if (outer) {
      if (outer.aborted) controller.abort();
      else outer.addEventListener("abort", () => controller.abort(), { once: true });
    }
    const engine = this.client.engine;
    if (engine !== undefined) {
      if (controller.signal.aborted) throw new APIUserAbortError();
      const remote = await engine.stream({ ...params, stream: true, ...(params.stream === true ? {} : { stream_options: null }) } as ChatCompletionCreateParams, controller.signal);
      if (params.stream === true) return new Stream<ChatCompletionChunk>(() => remote[Symbol.asyncIterator](), controller);
      return collect(remote[Symbol.asyncIterator]());
    }
    const model = this.client.model;
    if (model === undefined) throw new InvalidRequestError("model", "the client has no chat model (or engine): pass `model` or `engine` to createClient");
    const checked = checkParams(params, model);
    const turns = await this.convertMessages(params.messages);
    const prepared = await this.prepare(params.mla_edge, turns, controller.signal);
    const chunks = () => this.run(model, checked, prepared, controller.signal);
    if (params.stream === true) return new Stream<ChatCompletionChunk>(chunks, controller);
    return collect(chunks());
  }

  /** Opens, forks or creates the session; replays the history it lacks. */
  private async prepare(req: MlaEdgeRequest | undefined, turns: Turn[], signal: AbortSignal): Promise<Prepared> {
    const { sessions, sessionPool } = this.client;
    let session: ChatSession;
    let restored = 0;
    let forkedFrom: string | null = null;
    let created = false;
    const guard = async <T>(p: Promise<T>): Promise<T> => {
      try {
        return await p;
      } catch (e) {
        throw abortError(e, signal);
      }
    };
    if (req?.session !== undefined) {
      const { id, token } = req.session;
      if (req.fork_at !== undefined) {
        session = await guard(sessions.fork(id, token, req.fork_at, { signal }));
        forkedFrom = id;
        restored = session.length;
      } else {
        const held = sessionPool.get(id, token);
        if (held !== undefined) session = held;
        else {
          session = await guard(sessions.open(id, token, { signal }));
          restored = session.length;
        }
      }
    } else {
      session = await guard(
        sessions.create({
          codec: req?.codec ?? DEFAULT_SESSION_CODEC,
          ...(req?.chunk_tokens !== undefined ? { chunkTokens: req.chunk_tokens } : {}),
          ...(req?.storage !== undefined ? { storage: req.storage } : {}),
          ...(req?.ttl_seconds !== undefined ? { ttlSeconds: req.ttl_seconds } : {}),
          signal,
        }),
      );
      created = true;
    }
    const cached = session.length;
    // History: the answered turns of `messages` beyond what the session holds are replayed; fewer is a mismatch.
    const answered = turns.length - 1;
    const held = session.turns;
    if (answered > 0 && answered < held) {
      throw new InvalidRequestError(
        "messages",
        `session ${session.id} holds ${held} answered turns but the messages hold ${answered}: send the full conversation, only the new message(s), or mla_edge.fork_at = ${answered} to branch`,
        "history_mismatch",
      );
    }
    for (const t of turns.slice(answered > 0 ? held : answered, answered)) {
      const replay = answerIds(session.model, t.answer!);
      if (replay.length === 0) throw new InvalidRequestError("messages", "an assistant message of the history is empty");
      try {
        await session.complete({ messages: t.messages, replay, signal });
      } catch (e) {
        throw await this.settle(session, e, signal, created);
      }
    }
    return { session, cached, restored, replayed: session.length - cached, forkedFrom, created, turn: turns[turns.length - 1].messages };
  }

  private async *run(model: ChatModel, p: Checked, prep: Prepared, signal: AbortSignal): AsyncGenerator<ChatCompletionChunk> {
    const { session } = prep;
    const id = `chatcmpl-${randomId()}`;
    const created = Math.floor(Date.now() / 1000);
    const base = { id, object: "chat.completion.chunk" as const, created, model: model.ref.id, system_fingerprint: null };
    const scanner = new StopScanner(p.stops, (ids) => answerText(model, ids));
    const contextTokens = session.length;
    const ids: number[] = [];
    const t0 = now();
    let firstAt = 0;
    yield {
      ...base,
      choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null, logprobs: null }],
      mla_edge: { session: { id: session.id, token: session.token, turns: session.turns, tokens: contextTokens }, forked_from: prep.forkedFrom, restored_tokens: prep.restored },
    };
    const turn = session.stream({ messages: prep.turn, maxTokens: p.maxTokens, sampling: p.sampling, logitBias: p.logitBias, stop: () => scanner.stopped, signal });
    try {
      for await (const ev of turn) {
        if (ev.type === "token") {
          ids.push(ev.id);
          if (ids.length === 1) firstAt = now();
          const { delta } = scanner.push(ids);
          if (delta.length > 0) yield { ...base, choices: [{ index: 0, delta: { content: delta }, finish_reason: null, logprobs: null }] };
          continue;
        }
        const tail = scanner.finish(ev.tokenIds);
        if (tail.length > 0) yield { ...base, choices: [{ index: 0, delta: { content: tail }, finish_reason: null, logprobs: null }] };
        const lastAt = now();
        const u = ev.usage;
        const prompt = contextTokens + u.prompt_tokens;
        const usage: CompletionUsage = {
          prompt_tokens: prompt,
          completion_tokens: u.completion_tokens,
          total_tokens: prompt + u.completion_tokens,
          prompt_tokens_details: { cached_tokens: prep.cached },
        };
        const info: MlaEdgeCompletionInfo = {
          session: { id: session.id, token: session.token, turns: session.turns, tokens: session.length },
          forked_from: prep.forkedFrom,
          restored_tokens: prep.restored,
          replayed_tokens: prep.replayed,
          completion_ids: ev.tokenIds,
          kv_bytes: u.kv_bytes,
          kv_bytes_bf16: u.kv_bytes_uncompressed,
          kv_device_bytes: u.kv_device_bytes,
          ttft_ms: firstAt - t0,
          tokens_per_second: ids.length > 1 && lastAt > firstAt ? ((ids.length - 1) * 1000) / (lastAt - firstAt) : null,
          decoder: session.decoderChoice.kind,
        };
        const final: ChatCompletionChunk = {
          ...base,
          choices: [{ index: 0, delta: {}, finish_reason: ev.finishReason, logprobs: null }],
          mla_edge: info,
          ...(p.includeUsage ? {} : { usage }),
        };
        yield final;
        if (p.includeUsage) yield { ...base, choices: [], usage, mla_edge: info };
      }
    } catch (e) {
      throw await this.settle(session, e, signal, prep.created);
    }
  }

  /**
   * The error a failed request ends with. A 409 means another writer moved the session on: the held cache is stale, so
   * the next request reopens it. A session this request created and left empty is deleted (nothing half-written). A
   * message the chat template refuses (e.g. a system message for a template without one) is an invalid request.
   */
  private async settle(session: ChatSession, e: unknown, signal: AbortSignal, created: boolean): Promise<unknown> {
    if (e instanceof ConflictError) this.client.sessionPool.delete(session.id);
    if (created && session.turns === 0) {
      this.client.sessionPool.delete(session.id);
      await session.store.delete().catch(() => undefined);
    }
    if (e instanceof RuntimeError && e.code === "bad_messages") return new InvalidRequestError("messages", e.message);
    return abortError(e, signal);
  }

  /** OpenAI messages → turns of runtime messages; the last turn is the one to answer. */
  private async convertMessages(messages: readonly ChatCompletionMessageParam[]): Promise<Turn[]> {
    if (!Array.isArray(messages) || messages.length === 0) throw new InvalidRequestError("messages", "must be a non-empty array");
    const turns: Turn[] = [];
    let current: InputMessage[] = [];
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i];
      const where = `messages[${i}]`;
      if (m === null || typeof m !== "object") throw new InvalidRequestError(where, "must be a message object");
      if (m.role === "system" || m.role === "developer") {
        // the model's chat template decides whether it takes one (Qwen does; the tiny fixture's refuses it)
        if (typeof m.content !== "string" && !(Array.isArray(m.content) && m.content.every((p: ChatCompletionContentPart) => p?.type === "text"))) {
          throw new InvalidRequestError(`${where}.content`, `a ${m.role} message's content must be text`);
        }
        current.push({ role: "system", content: textOf(m, where) });
        continue;
      }
      if (m.role === "assistant") {
        if (!current.some((x) => x.role === "user")) throw new InvalidRequestError(where, "an assistant message must follow a user message");
        turns.push({ messages: current, answer: textOf(m, where) });
        current = [];
        continue;
      }
      if (m.role !== "user") throw new InvalidRequestError(`${where}.role`, `unknown role ${JSON.stringify((m as { role: unknown }).role)}`);
      current.push({ role: "user", content: await this.userContent(m, where) });
    }
    if (current.length === 0 || current[current.length - 1].role !== "user") throw new InvalidRequestError("messages", "the last message must be the user's");
    turns.push({ messages: current, answer: null });
    return turns;
  }

  private async userContent(m: ChatCompletionMessageParam, where: string): Promise<string | InputContentPart[]> {
    if (typeof m.content === "string") return m.content;
    if (!Array.isArray(m.content)) throw new InvalidRequestError(`${where}.content`, "must be a string or an array of content parts");
    const parts: InputContentPart[] = [];
    for (let j = 0; j < m.content.length; j++) {
      const part = m.content[j] as ChatCompletionContentPart;
      const at = `${where}.content[${j}]`;
      if (part?.type === "text") {
        if (typeof part.text !== "string") throw new InvalidRequestError(`${at}.text`, "must be a string");
        parts.push({ type: "text", text: part.text });
      } else if (part?.type === "image_url") {
        parts.push({ type: "image", image: await this.loadImage(part.image_url?.url, `${at}.image_url.url`) });
      } else if (part?.type === "image") {
        parts.push({ type: "image", image: part.image });
      } else {
        throw new InvalidRequestError(`${at}.type`, `unsupported content part ${JSON.stringify((part as { type?: unknown } | null)?.type)} (text, image_url, image)`);
      }
    }
    return parts;
  }

  private async loadImage(url: string | Blob | undefined, param: string): Promise<RgbImage> {
    const decode = this.client.decodeImage;
    const isBlob = typeof Blob !== "undefined" && url instanceof Blob;
    if (!isBlob && (typeof url !== "string" || url.length === 0)) throw new InvalidRequestError(param, "must be a data: or http(s) URL, or a Blob");
    if (typeof url === "string" && !/^(data:|https?:\/\/)/i.test(url)) throw new InvalidRequestError(param, `must be a data: or http(s) URL, got ${url.slice(0, 40)}`);
    if (decode === undefined) {
      if (typeof createImageBitmap !== "function") {
        throw new InvalidRequestError(param, "this runtime cannot decode images by itself: pass `decodeImage` to createClient (Node: decodeImageBytes)");
      }
      return decodeBrowserImage(url as string | Blob);
    }
    let bytes: Uint8Array;
    if (typeof url === "string" && url.startsWith("data:")) bytes = dataUrlBytes(url, param);
    else if (typeof url === "string") {
      const res = await fetch(url);
      if (!res.ok) throw new RuntimeError("unsupported_image", `cannot fetch image ${url}: HTTP ${res.status}`);
      bytes = new Uint8Array(await res.arrayBuffer());
    } else bytes = new Uint8Array(await (url as Blob).arrayBuffer());
    return decode(bytes);
  }
}

interface Prepared {
  readonly session: ChatSession;
  /** Session tokens before this request touched it (restored or held). */
  readonly cached: number;
  readonly restored: number;
  readonly replayed: number;
  readonly forkedFrom: string | null;
  /** The session was created by this request. */
  readonly created: boolean;
  readonly turn: InputMessage[];
}

/** The answer's text as the session reports it: stop ids left out, special tokens skipped. */
function answerText(model: ChatModel, ids: readonly number[]): string {
  const stops = model.format.stopIds;
  return model.processor.decode(ids.filter((t) => !stops.includes(t)), { skipSpecialTokens: true });
}

/** An assistant message of the history as the ids the session feeds as its answer (the template's closing ids follow). */
function answerIds(model: ChatModel, text: string): number[] {
  return model.processor.tokenizer.encode(text.trim(), { addSpecialTokens: false });
}

function textOf(m: ChatCompletionMessageParam, where: string): string {
  if (typeof m.content === "string") return m.content;
  if (Array.isArray(m.content) && m.content.every((p) => p?.type === "text")) return m.content.map((p) => (p as ChatCompletionContentPartText).text).join("");
  throw new InvalidRequestError(`${where}.content`, "an assistant message's content must be text");
}

function checkParams(p: ChatCompletionCreateParams, model: ChatModel): Checked {
  if (p === null || typeof p !== "object") throw new InvalidRequestError(null, "params must be an object");
  if (p.model !== undefined && p.model !== model.ref.id) throw new InvalidRequestError("model", `this client runs ${model.ref.id}, not ${String(p.model)}`);
  if (p.n !== undefined && p.n !== null && p.n !== 1) throw new InvalidRequestError("n", `only n = 1 is supported, got ${String(p.n)}`);
  const a = p.max_tokens ?? undefined;
  const b = p.max_completion_tokens ?? undefined;
  if (a !== undefined && b !== undefined && a !== b) throw new InvalidRequestError("max_completion_tokens", `max_tokens (${a}) and max_completion_tokens (${b}) differ`);
  const maxTokens = a ?? b ?? DEFAULT_MAX_TOKENS;
  if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new InvalidRequestError(b !== undefined ? "max_completion_tokens" : "max_tokens", `must be an integer ≥ 1, got ${String(maxTokens)}`);
  const temperature = p.temperature ?? 1;
  if (typeof temperature !== "number" || !(temperature >= 0 && temperature <= 2)) throw new InvalidRequestError("temperature", `must be in [0, 2], got ${String(temperature)}`);
  const topP = p.top_p ?? 1;
  if (typeof topP !== "number" || !(topP > 0 && topP <= 1)) throw new InvalidRequestError("top_p", `must be in (0, 1], got ${String(topP)}`);
  const seed = p.seed ?? Math.floor(Math.random() * 2 ** 32);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new InvalidRequestError("seed", `must be an integer ≥ 0, got ${String(seed)}`);
  const sampling: SamplingParams = { temperature, topP, seed };
  try {
    checkSamplingParams(sampling);
  } catch (e) {
    if (e instanceof SamplerError) throw new InvalidRequestError(null, e.message);
    throw e;
  }
  const stop = p.stop ?? [];
  const stops = typeof stop === "string" ? [stop] : stop;
  if (!Array.isArray(stops) || stops.length > 4 || stops.some((s) => typeof s !== "string" || s.length === 0)) {
    throw new InvalidRequestError("stop", "must be a non-empty string or an array of at most 4 non-empty strings");
  }
  if (p.stream_options != null && p.stream !== true) throw new InvalidRequestError("stream_options", "is only allowed with stream: true");
  const req = p.mla_edge;
  if (req !== undefined) {
    if (req === null || typeof req !== "object") throw new InvalidRequestError("mla_edge", "must be an object");
    if (req.session !== undefined && (typeof req.session?.id !== "string" || typeof req.session?.token !== "string" || req.session.id.length === 0)) {
      throw new InvalidRequestError("mla_edge.session", "must be { id, token } of an earlier response's mla_edge.session");
    }
    if (req.fork_at !== undefined) {
      if (req.session === undefined) throw new InvalidRequestError("mla_edge.fork_at", "needs mla_edge.session (the session to fork)");
      if (!Number.isSafeInteger(req.fork_at) || req.fork_at < 0) throw new InvalidRequestError("mla_edge.fork_at", `must be an integer ≥ 0, got ${String(req.fork_at)}`);
    }
    if (req.session !== undefined && (req.codec !== undefined || req.chunk_tokens !== undefined || req.storage !== undefined)) {
      throw new InvalidRequestError("mla_edge.codec", "codec, chunk_tokens and storage apply to new sessions only (the session has its own)");
    }
  }
  let logitBias: Map<number, number> | undefined;
  if (p.logit_bias != null) {
    if (typeof p.logit_bias !== "object") throw new InvalidRequestError("logit_bias", "must map token ids to biases");
    logitBias = new Map();
    const vocab = model.config.vocabSize;
    for (const [k, v] of Object.entries(p.logit_bias)) {
      const id = Number(k);
      if (!/^\d+$/.test(k) || id >= vocab) throw new InvalidRequestError("logit_bias", `${JSON.stringify(k)} is not a token id of this model (0..${vocab - 1})`);
      if (typeof v !== "number" || !(v >= -100 && v <= 100)) throw new InvalidRequestError("logit_bias", `bias of ${k} must be in [-100, 100], got ${String(v)}`);
      logitBias.set(id, v);
    }
  }
  return { maxTokens, logitBias, sampling, stops, includeUsage: p.stream === true && p.stream_options?.include_usage === true };
}

async function collect(chunks: AsyncIterator<ChatCompletionChunk>): Promise<ChatCompletion> {
  let content = "";
  let last: ChatCompletionChunk | null = null;
  let finish: FinishReason | null = null;
  let usage: CompletionUsage | null = null;
  let info: MlaEdgeCompletionInfo | null = null;
  for (let r = await chunks.next(); r.done !== true; r = await chunks.next()) {
    const c = r.value;
    last = c;
    for (const ch of c.choices) {
      content += ch.delta.content ?? "";
      if (ch.finish_reason !== null) finish = ch.finish_reason;
    }
    if (c.usage) usage = c.usage;
    if (c.choices[0]?.finish_reason != null) info = c.mla_edge as MlaEdgeCompletionInfo;
  }
  if (last === null || finish === null || usage === null || info === null) throw new RuntimeError("aborted", "the completion ended without an answer");
  return {
    id: last.id,
    object: "chat.completion",
    created: last.created,
    model: last.model,
    choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, finish_reason: finish, logprobs: null }],
    usage,
    system_fingerprint: null,
    mla_edge: info,
  };
}

/** An abort through the signal surfaces as the SDK's APIUserAbortError (as the OpenAI SDK does). */
function abortError(e: unknown, signal: AbortSignal): unknown {
  if (signal.aborted && !(e instanceof APIUserAbortError) && (e instanceof RuntimeError ? e.code === "aborted" : (e as { name?: unknown })?.name === "AbortError")) {
    return new APIUserAbortError();
  }
  return e;
}

function dataUrlBytes(url: string, param: string): Uint8Array {
  const m = /^data:([^,]*?)(;base64)?,(.*)$/s.exec(url);
  if (m === null) throw new InvalidRequestError(param, "malformed data: URL");
  if (m[2] === undefined) return new TextEncoder().encode(decodeURIComponent(m[3]));
  let bin: string;
  try {
    bin = atob(m[3]);
  } catch {
    throw new InvalidRequestError(param, "data: URL is not valid base64");
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function randomId(): string {
  const b = new Uint8Array(12);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());
