// Operator-key guard for /metrics and the dashboard data: `Authorization: Bearer <OPERATOR_KEY>`, compared in constant
// time over SHA-256 digests so neither the key's bytes nor its length leak through timing.
import type { MiddlewareHandler } from "hono";
import type { TelemetryEnv } from "./env.ts";
import { TelemetryError } from "./errors.ts";

const encoder = new TextEncoder();

/** Constant-time string equality: both sides are hashed first, so the loop is always 32 bytes long. */
export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(a)),
    crypto.subtle.digest("SHA-256", encoder.encode(b)),
  ]);
  const x = new Uint8Array(da);
  const y = new Uint8Array(db);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}

/** Bearer token of a request, or null when the header is absent or not a Bearer credential. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}

/** 401 without credentials, 403 with a wrong key or while OPERATOR_KEY is unset (the routes are then off). */
export function operatorAuth(): MiddlewareHandler<{ Bindings: TelemetryEnv }> {
  return async function operatorAuth(c, next) {
    const key = c.env.OPERATOR_KEY;
    const token = bearerToken(c.req.header("authorization"));
    if (token === null) throw new TelemetryError(401, "unauthorized", "operator routes need `Authorization: Bearer <OPERATOR_KEY>`");
    if (key === undefined || key === "") throw new TelemetryError(403, "forbidden", "OPERATOR_KEY is not set on this Worker: operator routes are off");
    if (!(await constantTimeEqual(token, key))) throw new TelemetryError(403, "forbidden", "the bearer token is not the operator key");
    await next();
  };
}
