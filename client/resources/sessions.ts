// Chat sessions: `create` makes an edge session for a model and codec and returns a chat over it; `open` restores a
// stored session (after a page reload) into a chat that continues where it stopped.

import type { CodecParams } from "../../format/codec/types.ts";
import type { SessionStorage } from "../../format/wire/messages.ts";
import { DEFAULT_CHUNK_TOKENS } from "../../format/chunk/types.ts";
import { MlaEdgeError } from "../core/error.ts";
import { APIResource, type RequestClient } from "../core/resource.ts";
import { HttpSessionStore } from "./http-store.ts";
import type { StoreSessions } from "./store-sessions.ts";
import type { TurnReporter } from "../telemetry/turn-reporter.ts";
import type { ChatModel } from "../../runtime/chat-model.ts";
import { ChatSession } from "../chat/chat-session.ts";
import type { SessionPool } from "../chat/session-pool.ts";
import { checkSessionCodec } from "../../runtime/session-cache.ts";
import type { ClientTurnReport } from "../../format/telemetry/client-report.ts";

export interface SessionCreateParams {
  /** Default: the client's `model`. */
  readonly model?: ChatModel;
  readonly codec: CodecParams;
  /** Tokens per sealed chunk (default 64). */
  readonly chunkTokens?: number;
  readonly ttlSeconds?: number;
  /** "quantized" (default) or "raw" (lossless float32 chunks, e.g. a baseline). */
  readonly storage?: SessionStorage;
  readonly signal?: AbortSignal;
}

export interface SessionOpenParams {
  readonly model?: ChatModel;
  readonly signal?: AbortSignal;
}

/** What Sessions needs of the client (MlaEdge satisfies it). */
export interface SessionsClient extends RequestClient {
  readonly store: { readonly sessions: StoreSessions };
  readonly telemetry: TurnReporter | null;
  readonly model: ChatModel | undefined;
  /** The sessions this client holds in memory (shared with `chat.completions`). */
  readonly sessionPool: SessionPool;
}

export interface SessionForkParams {
  readonly model?: ChatModel;
  readonly ttlSeconds?: number;
  readonly signal?: AbortSignal;
}

export class Sessions extends APIResource<SessionsClient> {
  /** Creates an empty edge session (tenant API key) and a chat over it. */
  async create(params: SessionCreateParams): Promise<ChatSession> {
    const model = this.modelOf(params.model);
    const chunkTokens = params.chunkTokens ?? DEFAULT_CHUNK_TOKENS;
    checkSessionCodec(model.spec, params.codec, chunkTokens);
    const created = await this._client.store.sessions.create(
      { spec: model.spec, model: model.ref, codec: params.codec, chunkTokens, ...(params.ttlSeconds !== undefined ? { ttlSeconds: params.ttlSeconds } : {}), ...(params.storage !== undefined ? { storage: params.storage } : {}) },
      { signal: params.signal },
    );
    const session = ChatSession.fresh(model, this.storeOf(created.id, created.token), {
      codec: params.codec,
      chunkTokens,
      storage: params.storage,
      onReport: this.reportSink(created.token),
    });
    this._client.sessionPool.put(session);
    return session;
  }

  /** Restores session `id` with its token: streams its chunks into the decoder cache; no image is re-encoded. */
  async open(id: string, token: string, params: SessionOpenParams = {}): Promise<ChatSession> {
    const session = await ChatSession.open(this.modelOf(params.model), this.storeOf(id, token), params.signal, this.reportSink(token));
    this._client.sessionPool.put(session);
    return session;
  }

  /**
   * Forks stored session `id` at `turn` on the edge (a new session holding its turns 1..turn; nothing is copied
   * through the client) and restores the fork. Unlike `ChatSession.fork`, the parent need not be held in memory.
   */
  async fork(id: string, token: string, turn: number, params: SessionForkParams = {}): Promise<ChatSession> {
    const model = this.modelOf(params.model);
    if (!Number.isInteger(turn) || turn < 0) throw new MlaEdgeError(`fork turn must be an integer ≥ 0, got ${turn}`);
    const created = await this._client.store.sessions.fork(id, { atSeq: turn, ...(params.ttlSeconds !== undefined ? { ttlSeconds: params.ttlSeconds } : {}) }, { token, signal: params.signal });
    return this.open(created.id, created.token, { model, signal: params.signal });
  }

  /** A restore that breaks mid-stream is resumed as often as the client retries a failed request (`maxRetries`). */
  private storeOf(id: string, token: string): HttpSessionStore {
    return new HttpSessionStore(this._client.store.sessions, id, token, { maxRestoreResumes: this._client.maxRetries });
  }

  private reportSink(token: string): ((r: ClientTurnReport) => void) | undefined {
    const reporter = this._client.telemetry;
    return reporter ? (r) => reporter.add(r, token) : undefined;
  }

  private modelOf(model: ChatModel | undefined): ChatModel {
    const m = model ?? this._client.model;
    if (m === undefined) throw new MlaEdgeError("no chat model: pass `model` here or in createClient({ model })");
    return m;
  }
}
