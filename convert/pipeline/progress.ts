// A text progress bar with elapsed time and ETA, one line per update (works on a TTY and in logs). Writes to a sink
// (the CLI passes stderr), so stdout stays clean for data and --json.

export type ProgressSink = (line: string) => void;

const BAR_WIDTH = 20;

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - 60 * m)).padStart(2, "0")}s`;
}

/** Progress of one phase of `total` steps; ETA assumes the remaining steps take as long as the finished ones. */
export class ProgressBar {
  private readonly started: number;
  private done = 0;

  constructor(
    private readonly sink: ProgressSink,
    private readonly phase: string,
    private readonly total: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  /** Marks `steps` more steps done and prints the bar with `label` (e.g. "layer 3/28"). */
  tick(label: string, steps = 1): void {
    this.at(this.done + steps, label);
  }

  /** Sets the number of finished steps to `done` and prints the bar. */
  at(done: number, label: string): void {
    this.done = Math.min(this.total, done);
    const elapsed = (this.now() - this.started) / 1000;
    const eta = this.done === 0 ? NaN : (elapsed / this.done) * (this.total - this.done);
    const filled = this.total === 0 ? BAR_WIDTH : Math.round((BAR_WIDTH * this.done) / this.total);
    const bar = "#".repeat(filled) + "-".repeat(BAR_WIDTH - filled);
    this.sink(`${this.phase.padEnd(9)} [${bar}] ${label} · ${formatSeconds(elapsed)} elapsed · ETA ${formatSeconds(eta)}\n`);
  }
}
