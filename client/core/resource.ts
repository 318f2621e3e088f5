// Base of every resource class: holds the client that performs its requests. Resources name the client by the
// interface they use (RequestClient here, SessionsClient in resources/sessions.ts), not by importing client.ts, so
// client.ts -> resources/* -> core/resource.ts is no loop.

import type { APIPromise, RawResponse } from "./api-promise.ts";

export interface RequestOptions {
  readonly method: "GET" | "POST" | "DELETE";
  readonly path: string;
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  /** JSON body (serialised) or raw bytes (sent with `contentType`). */
  readonly body?: unknown;
  readonly contentType?: string;
  /** `Accept` header; default application/json. */
  readonly accept?: string;
  /** Bearer credential: a session token; default the client's apiKey. */
  readonly token?: string;
  readonly signal?: AbortSignal;
  readonly maxRetries?: number;
  readonly timeout?: number;
  /**
   * For requests that are not retried (appends, creates, forks): still resend, up to twice, one that wrangler's dev
   * proxy answered without a response from the Worker (`neverDelivered`). An append carries its expected turn number,
   * so a resend never commits twice: at worst (the Worker did commit and only its answer was lost) it gets a 409.
   */
  readonly resendUndelivered?: boolean;
}

/** What a store resource needs of the client: the request loop and its retry and idle settings. */
export interface RequestClient {
  request<T>(opts: RequestOptions, parse?: (raw: RawResponse) => Promise<T>): APIPromise<T>;
  readonly maxRetries: number;
  readonly streamIdleTimeout: number;
}

export abstract class APIResource<C extends RequestClient = RequestClient> {
  protected readonly _client: C;
  constructor(client: C) {
    this._client = client;
  }
}
