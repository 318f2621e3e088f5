// Named pause points on the store's multi-step write paths (fork, append, delete), so tests can hold one request at a
// step and run another against it: the race windows of issue 16, hit on purpose instead of by a sleep. In production
// no hook is set and TEST_PAUSE_AT is unset, so a pause point is one null check.
//   - In-isolate tests (workerd, tests/worker) set a hook with setPauseHook; the hook's promise holds the request.
//   - The wrangler dev integration test (tests/store) starts the Worker with `--var TEST_PAUSE_AT:<point>`: the request
//     that reaches that point waits there (up to a minute), long enough to kill the process at exactly that step.

/** The steps a test can hold. */
export type PausePoint =
  /** POST /fork: after the parent's snapshot, before the child writes it and holds its rows. */
  | "fork.afterSnapshot"
  /** Append: after the control frame is accepted, before the first chunk is read. */
  | "append.beforeUpload"
  /** Append: every chunk is uploaded under the leased hold, before the holds are confirmed. */
  | "append.beforeConfirm"
  /** Append of a non-final part: its chunks are uploaded under leased holds, before the part is staged. */
  | "append.beforeStage"
  /** Append: holds confirmed, before the turn is committed in the SessionObject. */
  | "append.beforeCommit"
  /** DELETE (and TTL/cleanup): the session is marked deleting, before any hold is released. */
  | "delete.afterMark"
  /** DELETE: every hold released, before the session's storage is wiped. */
  | "delete.afterRelease";

export type PauseHook = (point: PausePoint, sessionId: string) => void | Promise<void>;

let hook: PauseHook | null = null;

/** Sets (or clears, with null) the in-isolate hook. Tests only. */
export function setPauseHook(h: PauseHook | null): void {
  hook = h;
}

/** How long a TEST_PAUSE_AT pause holds its request (the test kills the process meanwhile). */
const ENV_PAUSE_MS = 60_000;

/** Passes `point` of the request for `sessionId`: returns at once unless a test holds that step. */
export async function pausePoint(env: { readonly TEST_PAUSE_AT?: string }, point: PausePoint, sessionId: string): Promise<void> {
  if (hook !== null) await hook(point, sessionId);
  if (env.TEST_PAUSE_AT === point) await new Promise<void>((resolve) => setTimeout(resolve, ENV_PAUSE_MS));
}
