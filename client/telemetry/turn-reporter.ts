// Opt-in client timing reports (docs/telemetry.md §3): each finished turn's TTFT/TPOT/token usage, and after a restore
// how it went (fetch / decode / GPU upload, restored tokens reused or recomputed), batched into `POST /v1/telemetry`.
// Reporting never fails or slows a chat: posts run in the background, failures are counted and the batch dropped.

import { CLIENT_REPORT_VERSION, MAX_REPORTS_PER_BATCH, type ClientReportBatch, type ClientTurnReport } from "../../format/telemetry/client-report.ts";

export interface TelemetryOptions {
  /** Longest a report waits before its batch is posted, ms (default 2000). A full batch (64) goes at once. */
  readonly flushIntervalMs?: number;
  /** Reports held while posts fail or are pending; older ones are dropped beyond it (default 1024). */
  readonly maxQueued?: number;
}

/** Posts one batch; rejects on a transport error or a non-2xx answer. */
export type PostReports = (batch: ClientReportBatch, token: string | undefined) => Promise<void>;

export interface TelemetryCounters {
  readonly queued: number;
  readonly sent: number;
  readonly dropped: number;
  readonly failedPosts: number;
}

export class TurnReporter {
  readonly #post: PostReports;
  readonly #interval: number;
  readonly #maxQueued: number;
  /** Reports waiting, each with the session token that may authenticate its post. */
  #queue: { report: ClientTurnReport; token: string | undefined }[] = [];
  #timer: ReturnType<typeof setTimeout> | null = null;
  #inFlight: Promise<void> = Promise.resolve();
  #sent = 0;
  #dropped = 0;
  #failedPosts = 0;

  constructor(post: PostReports, options: TelemetryOptions = {}) {
    this.#post = post;
    this.#interval = options.flushIntervalMs ?? 2000;
    this.#maxQueued = options.maxQueued ?? 1024;
  }

  /** Queues one turn's report; `token` is the session's, used when the client has no tenant key. */
  add(report: ClientTurnReport, token?: string): void {
    this.#queue.push({ report, token });
    if (this.#queue.length > this.#maxQueued) {
      const over = this.#queue.length - this.#maxQueued;
      this.#queue.splice(0, over);
      this.#dropped += over;
    }
    if (this.#queue.length >= MAX_REPORTS_PER_BATCH) void this.flush();
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => void this.flush(), this.#interval);
      // A pending report must not keep a Node process alive.
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** Posts everything queued now; resolves when those posts are done (never rejects). */
  flush(): Promise<void> {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const batches: { reports: ClientTurnReport[]; token: string | undefined }[] = [];
    while (this.#queue.length > 0) {
      const part = this.#queue.splice(0, MAX_REPORTS_PER_BATCH);
      batches.push({ reports: part.map((q) => q.report), token: part.find((q) => q.token !== undefined)?.token });
    }
    // One post at a time, in order: a client that reports every turn never floods the Worker.
    this.#inFlight = this.#inFlight.then(async () => {
      for (const b of batches) {
        try {
          await this.#post({ v: CLIENT_REPORT_VERSION, reports: b.reports }, b.token);
          this.#sent += b.reports.length;
        } catch {
          this.#failedPosts++;
          this.#dropped += b.reports.length;
        }
      }
    });
    return this.#inFlight;
  }

  get counters(): TelemetryCounters {
    return { queued: this.#queue.length, sent: this.#sent, dropped: this.#dropped, failedPosts: this.#failedPosts };
  }
}
