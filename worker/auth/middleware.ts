// Hono middleware: tenant-key auth (create, mint) and session-token auth (every session route), as factories.
import type { MiddlewareHandler } from "hono";
import type { TokenScope } from "../../format/wire/messages.ts";
import { isWellFormedText } from "../../format/wire/well-formed.ts";
import type { Env } from "../env.ts";
import { ApiError } from "../errors.ts";
import { requireSecret, tenantForKey } from "./tenants.ts";
import { verifyToken, type TokenClaims } from "./tokens.ts";

export interface AuthVariables {
  tenant: string;
  claims: TokenClaims;
}

type AppEnv = { Bindings: Env; Variables: AuthVariables };

function bearer(header: string | undefined): string | null {
  if (header === undefined) return null;
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  return m === null ? null : m[1];
}

/** Requires `Authorization: Bearer <tenant API key>`; sets `tenant`. */
export function tenantAuth(): MiddlewareHandler<AppEnv> {
  return async function tenantAuth(c, next) {
    const key = bearer(c.req.header("authorization"));
    if (key === null) throw new ApiError(401, "unauthorized", "missing Authorization: Bearer <tenant API key>");
    const tenant = await tenantForKey(c.env, key);
    if (tenant === null) throw new ApiError(401, "unauthorized", "unknown tenant API key");
    c.set("tenant", tenant);
    await next();
  };
}

/**
 * Requires a session token for the `:id` of the route with `scope`; sets `tenant` and `claims`. The token comes from
 * `Authorization: Bearer`, or — only on a route mounted with `queryToken` (the WebSocket route: browsers cannot set
 * headers there) and only on a WebSocket upgrade — from `?token=`. Every other route ignores `?token=`, whatever
 * headers the request carries: a token in a URL leaks into logs and referrers, so it opens nothing but the socket.
 */
export function sessionAuth(scope: TokenScope, options: { readonly queryToken?: boolean } = {}): MiddlewareHandler<AppEnv> {
  const queryToken = options.queryToken === true;
  return async function sessionAuth(c, next) {
    let token = bearer(c.req.header("authorization"));
    if (token === null && queryToken && c.req.header("upgrade")?.toLowerCase() === "websocket") token = c.req.query("token") ?? null;
    if (token === null) throw new ApiError(401, "unauthorized", "missing Authorization: Bearer <session token>");
    const check = await verifyToken(requireSecret(c.env.SIGNING_SECRET, "SIGNING_SECRET"), token, Date.now());
    if (!check.ok) {
      if (check.reason === "expired") throw new ApiError(401, "token_expired", "session token expired: mint a new one with the tenant key");
      throw new ApiError(401, "unauthorized", `invalid session token (${check.reason})`);
    }
    const id = c.req.param("id");
    if (id === undefined || !isWellFormedText(id)) throw new ApiError(400, "bad_request", "the session id is not well-formed UTF-16 (a lone surrogate)", "ill_formed_text");
    if (check.claims.session !== id) throw new ApiError(403, "forbidden", "this token is for another session");
    if (!check.claims.scopes.includes(scope)) throw new ApiError(403, "forbidden", `this token lacks the ${scope} scope`);
    c.set("tenant", check.claims.tenant);
    c.set("claims", check.claims);
    await next();
  };
}
