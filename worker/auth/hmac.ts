// HMAC-SHA256 (WebCrypto) with keys imported once per isolate, base64url, and a constant-time byte comparison.

const keys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (key === undefined) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, key);
  }
  return key;
}

/** HMAC-SHA256(secret, label ‖ 0x00 ‖ message): the label separates the uses of one secret (tokens, tenant salts). */
export async function hmac(secret: string, label: string, message: Uint8Array | string): Promise<Uint8Array> {
  const enc = new TextEncoder();
  const msg = typeof message === "string" ? enc.encode(message) : message;
  const lab = enc.encode(label);
  const input = new Uint8Array(lab.length + 1 + msg.length);
  input.set(lab, 0);
  input.set(msg, lab.length + 1);
  return new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(secret), input));
}

/** Compares in time independent of where the inputs differ (lengths are not secret here: both are digests). */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function base64url(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Decodes base64url; null when the text is not base64url. */
export function fromBase64url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  try {
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}
