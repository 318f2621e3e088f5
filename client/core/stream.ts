// Stream<Item>: an AsyncIterable that owns an AbortController. Breaking out of a for-await aborts the work behind it,
// iterating twice throws (use tee()), and toReadableStream() bridges to Web streams.

import { MlaEdgeError } from "./error.ts";

export class Stream<Item> implements AsyncIterable<Item> {
  #consumed = false;

  constructor(
    private readonly iterate: () => AsyncIterator<Item>,
    readonly controller: AbortController,
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<Item> {
    if (this.#consumed) throw new MlaEdgeError("Cannot iterate over a consumed stream, use `.tee()` to split the stream.");
    this.#consumed = true;
    const inner = this.iterate();
    let done = false;
    return {
      next: async () => {
        if (done) return { value: undefined, done: true };
        try {
          const r = await inner.next();
          if (r.done) done = true;
          return r;
        } catch (e) {
          done = true;
          throw e;
        }
      },
      // `break` / `return` inside for-await: stop the producer.
      return: async () => {
        if (!done) {
          done = true;
          this.controller.abort();
          await inner.return?.();
        }
        return { value: undefined, done: true };
      },
    };
  }

  /** Two independent streams over the same items (buffered as the faster one reads). */
  tee(): [Stream<Item>, Stream<Item>] {
    const queues: Item[][] = [[], []];
    const source = this[Symbol.asyncIterator]();
    let pending: Promise<IteratorResult<Item>> | null = null;
    let finished = false;
    const pull = async (): Promise<void> => {
      pending ??= source.next();
      const r = await pending;
      pending = null;
      if (r.done) finished = true;
      else queues.forEach((q) => q.push(r.value));
    };
    const branch = (i: number) =>
      new Stream<Item>(
        () => ({
          next: async () => {
            while (queues[i].length === 0 && !finished) await pull();
            return queues[i].length > 0 ? { value: queues[i].shift() as Item, done: false } : { value: undefined, done: true };
          },
        }),
        this.controller,
      );
    return [branch(0), branch(1)];
  }

  /** A ReadableStream of the items (objects, not bytes). */
  toReadableStream(): ReadableStream<Item> {
    const it = this[Symbol.asyncIterator]();
    return new ReadableStream<Item>({
      async pull(ctrl) {
        const r = await it.next();
        if (r.done) ctrl.close();
        else ctrl.enqueue(r.value);
      },
      async cancel() {
        await it.return?.();
      },
    });
  }
}
