// What the chat runtime needs from the edge store for one session: append a turn, stream a restore, read the manifest,
// fork, truncate, delete. The SDK's HTTP layer implements it against the Worker; tests use an in-memory fake.

import type { AppendControl, AppendResult, Manifest, RestoreHeader, SessionCreated } from "../format/wire/messages.ts";
import type { PackedChunk } from "./session-cache.ts";

export interface TurnUpload {
  readonly control: AppendControl;
  readonly chunks: readonly PackedChunk[];
}

export type RestoreEvent = { readonly type: "header"; readonly header: RestoreHeader } | { readonly type: "chunk"; readonly bytes: Uint8Array };

export interface SessionStore {
  readonly id: string;
  /** The capability token of this session (what `open(id, token)` needs after a reload). */
  readonly token: string;
  manifest(signal?: AbortSignal): Promise<Manifest>;
  append(upload: TurnUpload, signal?: AbortSignal): Promise<AppendResult>;
  /** The header, then every chunk of the whole session (all tokens, all layers). */
  restore(signal?: AbortSignal): AsyncIterable<RestoreEvent>;
  /** Keeps turns 1..toSeq. */
  truncate(toSeq: number, signal?: AbortSignal): Promise<void>;
  /** A new session holding turns 1..atSeq of this one. */
  fork(atSeq: number, signal?: AbortSignal): Promise<{ readonly store: SessionStore; readonly created: SessionCreated }>;
  delete(signal?: AbortSignal): Promise<void>;
}
