// Ids are hashed as UTF-8 (chunk keys, Durable Object names), and UTF-8 encoding maps every lone surrogate to U+FFFD:
// "m\ud800", "m\udc00" and "m\ufffd" would become the same bytes, the same keys, and share one cache. Strings that
// are not well-formed UTF-16 are refused wherever an id enters instead.

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Whether `s` is well-formed UTF-16 (every surrogate paired), i.e. encodes to UTF-8 and back unchanged. */
export function isWellFormedText(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}
