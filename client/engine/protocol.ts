// The messages between the page and a chat engine running in a dedicated Web Worker (client/engine/): the page asks
// for a completion and may abort it; the worker streams back `chat.completion.chunk`s, then `end`, or an `error` that
// the page turns back into the SDK's typed error. Flow control: the worker sends one chunk per credit — the request
// is the first, each `pull` one more — so it never runs ahead of the reader: a turn the page aborted after reading its
// last token is rolled back, not stored (the worker commits a turn only when the reader asks past its last token). Everything here survives structured cloning (no functions, no
// AbortSignal); image parts may carry Blobs, which clone.

import type { ChatCompletionChunk, ChatCompletionCreateParams } from "../chat/completions.ts";

export type EngineRequest =
  | { readonly type: "completion"; readonly id: number; readonly params: ChatCompletionCreateParams }
  | { readonly type: "pull"; readonly id: number }
  | { readonly type: "abort"; readonly id: number };

/** An error as it crosses postMessage: enough to rebuild its class. */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
  /** InvalidRequestError: the parameter and the message without it. */
  readonly param?: string | null;
  readonly detail?: string;
  /** APIError: HTTP status and the `{error}` body. */
  readonly status?: number;
  readonly body?: unknown;
}

export type EngineReply =
  | { readonly type: "chunk"; readonly id: number; readonly chunk: ChatCompletionChunk }
  | { readonly type: "end"; readonly id: number }
  | { readonly type: "error"; readonly id: number; readonly error: WireError };

/** What both ends need of a Worker / the worker's global scope. */
export interface MessageEndpoint {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (ev: { data: unknown }) => void): void;
  removeEventListener?(type: "message", listener: (ev: { data: unknown }) => void): void;
}
