// Shared Hono types and helpers of the route modules.
import type { Context } from "hono";
import type { AuthVariables } from "./auth/middleware.ts";
import type { Env } from "./env.ts";
import { badRequest, tooLarge } from "./errors.ts";
import { sessionObjectName } from "./keys.ts";
import { MAX_JSON_BODY_BYTES } from "./limits.ts";

export type AppEnv = { Bindings: Env; Variables: AuthVariables };
export type AppContext = Context<AppEnv>;

export function sessionStub(env: Env, tenant: string, sessionId: string) {
  return env.SESSIONS.get(env.SESSIONS.idFromName(sessionObjectName(tenant, sessionId)));
}

/** Parses a small JSON body (control routes); 400 when absent or malformed, 413 above MAX_JSON_BODY_BYTES. */
export async function readJson(c: AppContext): Promise<Record<string, unknown>> {
  const text = await readCapped(c.req.raw, MAX_JSON_BODY_BYTES);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest("body must be a JSON object");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw badRequest("body must be a JSON object");
  return value as Record<string, unknown>;
}

/** The body as text, refusing (413) to buffer more than `max` bytes whatever Content-Length says. */
async function readCapped(request: Request, max: number): Promise<string> {
  if (Number(request.headers.get("content-length") ?? "0") > max) throw tooLarge(`JSON body above ${max} bytes`);
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      throw tooLarge(`JSON body above ${max} bytes`);
    }
    parts.push(value);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new TextDecoder().decode(all);
}

/** An optional integer field in [min, max]. */
export function intField(body: Record<string, unknown>, name: string, min: number, max: number, fallback?: number): number {
  const v = body[name] ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw badRequest(`${name} must be an integer in [${min}, ${max}]`);
  }
  return v;
}
