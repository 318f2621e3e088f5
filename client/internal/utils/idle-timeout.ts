// A response body that fails when no bytes arrive for `ms`: a connection that stalls without closing (a phone between
// networks) becomes an error the caller can act on (a restore resumes) instead of a read that never returns. It also
// ends a pending read when `signal` aborts: after the response headers, fetch's own signal no longer reaches the body.

/**
 * Wraps `body`; a read that waits longer than `ms` cancels `body` and errors the wrapper with `onIdle()`, an abort of
 * `signal` with the signal's reason. Reads are pulled only when the consumer asks (highWaterMark 0), so a slow
 * consumer never counts as an idle network.
 */
export function withIdleTimeout(body: ReadableStream<Uint8Array>, ms: number, onIdle: () => Error, signal?: AbortSignal): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        let onAbort: (() => void) | undefined;
        const stop = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(onIdle()), ms);
          if (signal?.aborted) reject(signal.reason);
          onAbort = () => reject(signal?.reason);
          signal?.addEventListener("abort", onAbort, { once: true });
        });
        try {
          const r = await Promise.race([reader.read(), stop]);
          if (r.done) controller.close();
          else controller.enqueue(r.value);
        } catch (e) {
          void reader.cancel(e).catch(() => undefined);
          controller.error(e);
        } finally {
          clearTimeout(timer);
          if (onAbort) signal?.removeEventListener("abort", onAbort);
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
