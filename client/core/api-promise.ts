// APIPromise<T>: a Promise of the parsed body that also offers the raw Response (`asResponse`) or both
// (`withResponse`). The body is parsed lazily, once, when the promise is awaited.

export interface RawResponse {
  readonly response: Response;
  readonly requestId: string | null;
}

export class APIPromise<T> extends Promise<T> {
  #parsed: Promise<T> | undefined;

  constructor(
    private readonly responsePromise: Promise<RawResponse>,
    private readonly parseResponse: (raw: RawResponse) => Promise<T>,
  ) {
    super((resolve) => resolve(null as unknown as T));
  }

  /** The raw Response, body unread (for streaming it yourself). */
  asResponse(): Promise<Response> {
    return this.responsePromise.then((r) => r.response);
  }

  /** The parsed data with the Response and the request id. */
  async withResponse(): Promise<{ data: T; response: Response; request_id: string | null }> {
    const [data, raw] = await Promise.all([this.parse(), this.responsePromise]);
    return { data, response: raw.response, request_id: raw.requestId };
  }

  private parse(): Promise<T> {
    this.#parsed ??= this.responsePromise.then(this.parseResponse);
    return this.#parsed;
  }

  override then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.parse().then(onfulfilled, onrejected);
  }

  override catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.parse().catch(onrejected);
  }

  override finally(onfinally?: (() => void) | null): Promise<T> {
    return this.parse().finally(onfinally);
  }
}
