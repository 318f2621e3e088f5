// Maps a request to the operation it is recorded under (and its session id), or null for routes not recorded. The
// default matches the edge store's routes (worker/app.ts); pass your own to recordRequests() if they move.
import type { Operation } from "./events.ts";

export interface RouteClass {
  readonly op: Operation;
  readonly sessionId?: string;
}

export type RouteClassifier = (method: string, path: string) => RouteClass | null;

const SESSION = "/v1/sessions/";

/** Percent-decoded path segment; a malformed escape is kept raw (recording must never throw on the request path). */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/**
 * The store's routes: POST /v1/sessions (create), GET /v1/sessions/:id (manifest), DELETE /v1/sessions/:id,
 * POST …/turns and GET …/turns/ws (append), GET …/chunks (restore), POST …/fork, …/truncate, …/tokens.
 * Telemetry's own routes, health and anything outside /v1/sessions are not recorded.
 */
export const defaultRouteClassifier: RouteClassifier = (method, path) => {
  if (path === "/v1/sessions" || path === "/v1/sessions/") return method === "POST" ? { op: "create" } : { op: "other" };
  if (!path.startsWith(SESSION)) return null;
  const rest = path.slice(SESSION.length).split("/");
  const sessionId = decodeSegment(rest[0] ?? "");
  if (sessionId === "") return { op: "other" };
  const sub = rest.slice(1).join("/");
  const withSession = (op: Operation): RouteClass => ({ op, sessionId });
  switch (sub) {
    case "":
      return withSession(method === "DELETE" ? "delete" : method === "GET" || method === "HEAD" ? "manifest" : "other");
    case "turns":
    case "turns/ws":
      return withSession("append");
    case "chunks":
      return withSession("restore");
    case "fork":
      return withSession("fork");
    case "truncate":
      return withSession("truncate");
    case "tokens":
      return withSession("token");
    default:
      return withSession("other");
  }
};
