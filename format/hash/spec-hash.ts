// SHA-256 of a cache spec's canonical JSON: the identity every chunk carries so a reader never mixes caches of
// different conversions. @noble/hashes is synchronous and identical in Node, workerd and browsers.
import { sha256 } from "@noble/hashes/sha2.js";
import { canonicalSpecJson, type CacheSpec } from "../cache-spec.ts";

/** Bytes of a spec hash. */
export const SPEC_HASH_BYTES = 32;

/** SHA-256 of `canonicalSpecJson(spec)` (UTF-8), 32 bytes. */
export function specHash(spec: CacheSpec): Uint8Array {
  return sha256(new TextEncoder().encode(canonicalSpecJson(spec)));
}

/** Lower-case hex of `specHash(spec)`, for logs, URLs and tests. */
export function specHashHex(spec: CacheSpec): string {
  return bytesToHex(specHash(spec));
}

/** Lower-case hex of arbitrary bytes. */
export function bytesToHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += bytes[i].toString(16).padStart(2, "0");
  return s;
}

/** Constant-shape comparison of two hashes (length and every byte). */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
