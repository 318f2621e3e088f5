// CRC-32C (Castagnoli, RFC 3720 §B.4): the checksum that closes every chunk (docs/chunk-format.md).
// Table-driven slicing-by-8 in plain TypeScript so Node, workerd and browsers compute it identically without native code.

/** Reflected Castagnoli polynomial 0x1EDC6F41 (RFC 3720 §12.1). */
const POLY_REFLECTED = 0x82f63b78;

/** 8 tables of 256 entries: table k advances a byte through k further zero bytes (slicing-by-8, Intel 2006). */
const TABLES: Uint32Array = buildTables();

function buildTables(): Uint32Array {
  const t = new Uint32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY_REFLECTED : c >>> 1;
    t[i] = c >>> 0;
  }
  for (let k = 1; k < 8; k++) {
    for (let i = 0; i < 256; i++) {
      const prev = t[(k - 1) * 256 + i];
      t[k * 256 + i] = (prev >>> 8) ^ t[prev & 0xff];
    }
  }
  return t;
}

/** A CRC-32C implementation: this file's, or a codec's WebAssembly one (`codec.crc32c`, about 2× faster). */
export type Crc32c = (bytes: Uint8Array, previous?: number) => number;

/**
 * CRC-32C of `bytes`, continuing from `previous` (the CRC of the bytes before), so
 * `crc32c(b, crc32c(a)) === crc32c(a ‖ b)`. Returns an unsigned 32-bit integer.
 *
 * @example crc32c(new TextEncoder().encode("123456789")) === 0xe3069283
 */
export function crc32c(bytes: Uint8Array, previous = 0): number {
  const t = TABLES;
  let crc = ~previous >>> 0;
  let i = 0;
  const n = bytes.length;
  const end8 = n - (n % 8);
  for (; i < end8; i += 8) {
    const lo = crc ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    crc =
      t[7 * 256 + (lo & 0xff)] ^
      t[6 * 256 + ((lo >>> 8) & 0xff)] ^
      t[5 * 256 + ((lo >>> 16) & 0xff)] ^
      t[4 * 256 + (lo >>> 24)] ^
      t[3 * 256 + bytes[i + 4]] ^
      t[2 * 256 + bytes[i + 5]] ^
      t[256 + bytes[i + 6]] ^
      t[bytes[i + 7]];
  }
  for (; i < n; i++) crc = (crc >>> 8) ^ t[(crc ^ bytes[i]) & 0xff];
  return ~crc >>> 0;
}
