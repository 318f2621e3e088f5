// The SDK client: options (baseURL, apiKey, fetch, maxRetries, timeout, default chat model), the request loop with
// retries and timeouts, and the resources: `client.sessions` (chat sessions over the edge cache) and
// `client.store.sessions` (the raw edge-store API).

import { APIPromise, type RawResponse } from "./core/api-promise.ts";
import type { RequestOptions } from "./core/resource.ts";
import * as Errors from "./core/error.ts";
import { sleep } from "./internal/utils/sleep.ts";
import { Sessions } from "./resources/sessions.ts";
import { StoreSessions } from "./resources/store-sessions.ts";
import { StoreUsage } from "./resources/store-usage.ts";
import type { ChatModel } from "../runtime/chat-model.ts";
import { TurnReporter, type TelemetryOptions } from "./telemetry/turn-reporter.ts";
import { Completions, type ChatEngine, type ImageBytesDecoder } from "./chat/completions.ts";
import { SessionPool } from "./chat/session-pool.ts";

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** The edge store's origin, e.g. http://127.0.0.1:8787 (the `/v1/...` paths are appended). */
  readonly baseURL?: string;
  /** Alias of baseURL (the spelling). */
  readonly baseUrl?: string;
  /** Tenant API key: needed to create sessions and mint tokens; session calls use the session's own token. */
  readonly apiKey?: string | null;
  /** Injectable fetch (tests hit the Worker in process; default: globalThis.fetch). */
  readonly fetch?: Fetch;
  /** Retries of idempotent requests on connection errors, 408, 429 and ≥ 500 (default 2). */
  readonly maxRetries?: number;
  /** Per-request timeout in ms (default 10 minutes). */
  readonly timeout?: number;
  /**
   * ms a restore stream may go without a byte before it counts as a broken connection (APIConnectionTimeoutError),
   * which a chat session's restore then resumes (default 60 s; the store itself never pauses longer than ~40 s: a shard
   * read is retried once after 20 s, then the stream ends with an error frame).
   */
  readonly streamIdleTimeout?: number;
  /** The chat model `sessions.create/open` use when a call names none. */
  readonly model?: ChatModel;
  /**
   * Opt-in timing reports to the edge's `POST /v1/telemetry` after every turn (TTFT, TPOT, tokens, restore split and
   * reuse): `true` or options. Off by default. `client.telemetry.flush()` posts what is queued.
   */
  readonly telemetry?: boolean | TelemetryOptions;
  /**
   * Decodes PNG/JPEG bytes of `image_url` parts in `chat.completions.create` (Node: `decodeImageBytes` from
   * runtime/inputs/image-decode.node.ts). Default: the browser's decoder (createImageBitmap); without one, image_url
   * parts are refused.
   */
  readonly decodeImage?: ImageBytesDecoder;
  /**
   * Where `chat.completions` run instead of on `model`: e.g. `new WorkerEngine(worker)`, a dedicated Web Worker that
   * holds the model (client/engine/). Default: in process, on `model`.
   */
  readonly engine?: ChatEngine;
  /** Chat sessions the client keeps in memory for `chat.completions` and `sessions` (least recently used dropped; default 8). */
  readonly sessionCacheSize?: number;
}

/**
 * wrangler dev's proxy (4.86, under `npm start`) loses a request written on a pooled connection at the instant kj
 * closes it for 5 s of idleness, and answers a POST with this text and 503 (workers-sdk #14641): the Worker never saw
 * it. (4.86 answers the same for any failed hop to the Worker.) Production has no such proxy. Our Worker answers
 * every error as JSON, so this plain-text body cannot be its own.
 */
const DEV_PROXY_UNDELIVERED = "Your worker restarted mid-request.";

/** True when a non-OK answer came from wrangler's dev proxy, not from the Worker: the request was (almost surely) lost. */
export function neverDelivered(status: number, contentType: string | null, text: string): boolean {
  return status === 503 && !(contentType ?? "").includes("json") && text.startsWith(DEV_PROXY_UNDELIVERED);
}

export type { RequestOptions };

export class MlaEdge {
  readonly baseURL: string;
  readonly apiKey: string | null;
  readonly maxRetries: number;
  readonly timeout: number;
  readonly streamIdleTimeout: number;
  readonly model: ChatModel | undefined;
  /** The report queue when `telemetry` is on, else null. */
  readonly telemetry: TurnReporter | null;
  readonly decodeImage: ImageBytesDecoder | undefined;
  readonly engine: ChatEngine | undefined;
  /** The chat sessions this client holds in memory, shared by `sessions` and `chat.completions`. */
  readonly sessionPool: SessionPool;
  private readonly fetchImpl: Fetch;

  readonly sessions: Sessions;
  /** OpenAI-style chat completions over edge-stored sessions. */
  readonly chat: { readonly completions: Completions };
  readonly store: { readonly sessions: StoreSessions; readonly usage: StoreUsage };

  static MlaEdgeError = Errors.MlaEdgeError;
  static APIError = Errors.APIError;
  static APIConnectionError = Errors.APIConnectionError;
  static APIConnectionTimeoutError = Errors.APIConnectionTimeoutError;
  static APIUserAbortError = Errors.APIUserAbortError;
  static BadRequestError = Errors.BadRequestError;
  static AuthenticationError = Errors.AuthenticationError;
  static PermissionDeniedError = Errors.PermissionDeniedError;
  static NotFoundError = Errors.NotFoundError;
  static ConflictError = Errors.ConflictError;
  static PayloadTooLargeError = Errors.PayloadTooLargeError;
  static UnprocessableEntityError = Errors.UnprocessableEntityError;
  static RateLimitError = Errors.RateLimitError;
  static InternalServerError = Errors.InternalServerError;

  constructor(options: ClientOptions = {}) {
    const base = options.baseURL ?? options.baseUrl;
    if (base === undefined) throw new Errors.MlaEdgeError("baseURL is required (the edge store's origin, e.g. http://127.0.0.1:8787)");
    this.baseURL = base.replace(/\/+$/, "");
    this.apiKey = options.apiKey ?? null;
    this.maxRetries = options.maxRetries ?? 2;
    this.timeout = options.timeout ?? 10 * 60 * 1000;
    this.streamIdleTimeout = options.streamIdleTimeout ?? 60 * 1000;
    this.model = options.model;
    if (options.fetch === undefined && typeof globalThis.fetch !== "function") throw new Errors.MlaEdgeError("no fetch: pass `fetch` in the client options");
    // browsers throw "Illegal invocation" for a fetch called without `this` = the global object
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    const t = options.telemetry;
    this.telemetry =
      t === undefined || t === false
        ? null
        : new TurnReporter(async (batch, token) => {
            await this.request({ method: "POST", path: "/v1/telemetry", body: batch, token: this.apiKey ?? token, maxRetries: 1 });
          }, t === true ? {} : t);
    this.decodeImage = options.decodeImage;
    this.engine = options.engine;
    this.sessionPool = new SessionPool(options.sessionCacheSize ?? 8);
    this.sessions = new Sessions(this);
    this.chat = { completions: new Completions(this) };
    this.store = { sessions: new StoreSessions(this), usage: new StoreUsage(this) };
  }

  /** Performs a request; the APIPromise parses JSON bodies (204 → undefined) unless `parse` says otherwise. */
  request<T>(opts: RequestOptions, parse: (raw: RawResponse) => Promise<T> = parseJson as (raw: RawResponse) => Promise<T>): APIPromise<T> {
    return new APIPromise(this.send(opts), parse);
  }

  private buildUrl(path: string, query: RequestOptions["query"]): string {
    const url = new URL(this.baseURL + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url.toString();
  }

  private async send(opts: RequestOptions): Promise<RawResponse> {
    const url = this.buildUrl(opts.path, opts.query);
    const headers: Record<string, string> = { accept: opts.accept ?? "application/json" };
    const credential = opts.token ?? this.apiKey;
    if (credential) headers.authorization = `Bearer ${credential}`;
    let body: BodyInit | undefined;
    if (opts.body instanceof Uint8Array) {
      body = opts.body as Uint8Array<ArrayBuffer>;
      headers["content-type"] = opts.contentType ?? "application/octet-stream";
    } else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["content-type"] = "application/json";
    }
    const maxRetries = opts.maxRetries ?? this.maxRetries;
    for (let attempt = 0; ; attempt++) {
      if (opts.signal?.aborted) throw new Errors.APIUserAbortError();
      const controller = new AbortController();
      const timeoutMs = opts.timeout ?? this.timeout;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      const onAbort = () => controller.abort();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      let response: Response;
      try {
        response = await this.fetchImpl(url, { method: opts.method, headers, body, signal: controller.signal });
      } catch (cause) {
        if (opts.signal?.aborted) throw new Errors.APIUserAbortError();
        if (attempt < maxRetries) {
          await sleep(retryDelay(attempt, null), opts.signal);
          continue;
        }
        if (timedOut) throw new Errors.APIConnectionTimeoutError();
        throw new Errors.APIConnectionError({ cause: cause instanceof Error ? cause : undefined });
      } finally {
        clearTimeout(timer);
        opts.signal?.removeEventListener("abort", onAbort);
      }
      const requestId = response.headers.get("x-request-id") ?? response.headers.get("cf-ray");
      if (response.ok) return { response, requestId };
      if (attempt < maxRetries && shouldRetry(response)) {
        await response.body?.cancel().catch(() => undefined);
        await sleep(retryDelay(attempt, response.headers), opts.signal);
        continue;
      }
      const text = await response.text().catch(() => "");
      if (opts.resendUndelivered && attempt < 2 && neverDelivered(response.status, response.headers.get("content-type"), text)) continue;
      let parsed: unknown;
      try {
        parsed = text.length > 0 ? JSON.parse(text) : undefined;
      } catch {
        parsed = undefined;
      }
      throw Errors.APIError.generate(response.status, parsed, text.length > 0 && parsed === undefined ? text : undefined, response.headers);
    }
  }
}

async function parseJson(raw: RawResponse): Promise<unknown> {
  if (raw.response.status === 204) return undefined;
  const text = await raw.response.text();
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new Errors.StreamFormatError("bad_json", `response of status ${raw.response.status} is not JSON: ${text.slice(0, 200)}`, { cause });
  }
}

function shouldRetry(response: Response): boolean {
  const hint = response.headers.get("x-should-retry");
  if (hint === "true") return true;
  if (hint === "false") return false;
  return response.status === 408 || response.status === 429 || response.status >= 500;
}

/** retry-after-ms / retry-after when given (≤ 60 s), else 0.5 s · 2^attempt with jitter, capped at 8 s. */
function retryDelay(attempt: number, headers: Headers | null): number {
  const ms = Number(headers?.get("retry-after-ms"));
  if (Number.isFinite(ms) && ms > 0 && ms <= 60_000) return ms;
  const s = Number(headers?.get("retry-after"));
  if (Number.isFinite(s) && s > 0 && s <= 60) return s * 1000;
  return Math.min(500 * 2 ** attempt, 8000) * (1 - Math.random() * 0.25);
}

/** `createClient({ baseUrl, apiKey })`. */
export function createClient(options: ClientOptions): MlaEdge {
  return new MlaEdge(options);
}
