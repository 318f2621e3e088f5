// Per-session capability tokens: base64url(JSON payload) "." base64url(HMAC-SHA256(SIGNING_SECRET, payload)).
// Stateless: the Worker checks signature, expiry, tenant, session and scope on every request without a lookup.
import type { TokenScope } from "../../format/wire/messages.ts";
import { base64url, constantTimeEqual, fromBase64url, hmac } from "./hmac.ts";

const TOKEN_LABEL = "mla-edge/session-token/v1";

/** Default token lifetime: one day; clients mint fresh ones with the tenant key (`POST /v1/sessions/:id/tokens`). */
export const DEFAULT_TOKEN_TTL_MS = 24 * 3600 * 1000;

export interface TokenClaims {
  readonly v: 1;
  readonly tenant: string;
  readonly session: string;
  readonly scopes: readonly TokenScope[];
  /** Expiry, ms since the epoch. */
  readonly exp: number;
}

export async function mintToken(secret: string, claims: TokenClaims): Promise<string> {
  const payload = base64url(new TextEncoder().encode(JSON.stringify(claims)));
  return `${payload}.${base64url(await hmac(secret, TOKEN_LABEL, payload))}`;
}

export type TokenCheck = { ok: true; claims: TokenClaims } | { ok: false; reason: "malformed" | "bad_signature" | "expired" };

/** Verifies signature then expiry. The claims are parsed only after the signature matched. */
export async function verifyToken(secret: string, token: string, now: number): Promise<TokenCheck> {
  const dot = token.indexOf(".");
  if (dot <= 0 || dot !== token.lastIndexOf(".")) return { ok: false, reason: "malformed" };
  const payload = token.slice(0, dot);
  const sig = fromBase64url(token.slice(dot + 1));
  if (sig === null) return { ok: false, reason: "malformed" };
  if (!constantTimeEqual(sig, await hmac(secret, TOKEN_LABEL, payload))) return { ok: false, reason: "bad_signature" };
  const raw = fromBase64url(payload);
  if (raw === null) return { ok: false, reason: "malformed" };
  let claims: TokenClaims;
  try {
    claims = JSON.parse(new TextDecoder().decode(raw)) as TokenClaims;
  } catch {
    return { ok: false, reason: "malformed" };
  }
  if (claims.v !== 1 || typeof claims.exp !== "number" || !Array.isArray(claims.scopes)) return { ok: false, reason: "malformed" };
  if (claims.exp <= now) return { ok: false, reason: "expired" };
  return { ok: true, claims };
}
