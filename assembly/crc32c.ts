// CRC-32C (Castagnoli) of bytes in linear memory, for chunk checksums on the Worker's upload and restore paths and the
// client's restore: slicing-by-8 over four quarters at once (four independent table-lookup chains keep the core busy)
// joined by GF(2) shifts. format/hash/crc32c.ts is the TypeScript twin and the reference the tests compare against.

/** Reflected Castagnoli polynomial 0x1EDC6F41 (RFC 3720 §12.1). */
const POLY: u32 = 0x82f63b78;

// 8 tables × 256 u32 in static memory (below __heap_base, so the host's scratch region never overlaps them).
const TABLES: usize = memory.data(8 * 256 * 4, 16);
let tablesReady = false;

function buildTables(): void {
  for (let i: u32 = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    store<u32>(TABLES + (<usize>i << 2), c);
  }
  for (let k: u32 = 1; k < 8; k++) {
    for (let i: u32 = 0; i < 256; i++) {
      const prev = load<u32>(TABLES + ((<usize>((k - 1) << 8) + i) << 2));
      store<u32>(TABLES + ((<usize>(k << 8) + i) << 2), (prev >>> 8) ^ load<u32>(TABLES + (<usize>(prev & 0xff) << 2)));
    }
  }
  tablesReady = true;
}

// @ts-ignore: decorator
@inline function table(k: u32, b: u32): u32 {
  return load<u32>(TABLES + (<usize>((k << 8) | b) << 2));
}

/** Advances a raw (not inverted) CRC state over the 8 bytes at p. */
// @ts-ignore: decorator
@inline function step8(crc: u32, p: usize): u32 {
  const lo = crc ^ load<u32>(p);
  const hi = load<u32>(p, 4);
  return (
    table(7, lo & 0xff) ^
    table(6, (lo >>> 8) & 0xff) ^
    table(5, (lo >>> 16) & 0xff) ^
    table(4, lo >>> 24) ^
    table(3, hi & 0xff) ^
    table(2, (hi >>> 8) & 0xff) ^
    table(1, (hi >>> 16) & 0xff) ^
    table(0, hi >>> 24)
  );
}

/** a·b mod P in the reflected representation (bit 31 is x^0). */
function gfMul(a: u32, b: u32): u32 {
  let product: u32 = 0;
  for (let i = 0; i < 32; i++) {
    if (a & 0x80000000) product ^= b;
    a <<= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return product;
}

/** x^(8n) mod P: multiplying a raw CRC state by it advances the state over n zero bytes. */
function zerosOperator(n: usize): u32 {
  let result: u32 = 0x80000000; // x^0
  let base: u32 = 0x00800000; // x^8
  while (n != 0) {
    if (n & 1) result = gfMul(result, base);
    base = gfMul(base, base);
    n >>= 1;
  }
  return result;
}

/** Below this many bytes one chain is as fast as four (the join costs ~100 multiply steps). */
const INTERLEAVE_MIN: usize = 1024;

/**
 * CRC-32C of the `n` bytes at `ptr`, continuing from `previous` (the CRC of the bytes before), so that
 * crc32c(b, crc32c(a)) == crc32c(a ‖ b), exactly as format/hash/crc32c.ts.
 */
export function crc32c(ptr: usize, n: usize, previous: u32): u32 {
  if (!tablesReady) buildTables();
  let crc = ~previous;
  let p = ptr;
  let left = n;
  if (left >= INTERLEAVE_MIN) {
    // Four quarters of q bytes (q a multiple of 8): chain 0 continues `crc`, chains 1–3 start from 0 and are joined by
    // shifting the running state over q bytes and xoring, which is linear in GF(2).
    const q = (left >> 2) & ~(<usize>7);
    let a = crc;
    let b: u32 = 0;
    let c: u32 = 0;
    let d: u32 = 0;
    const p1 = p + q;
    const p2 = p1 + q;
    const p3 = p2 + q;
    for (let i: usize = 0; i < q; i += 8) {
      a = step8(a, p + i);
      b = step8(b, p1 + i);
      c = step8(c, p2 + i);
      d = step8(d, p3 + i);
    }
    const shift = zerosOperator(q);
    crc = gfMul(shift, gfMul(shift, gfMul(shift, a) ^ b) ^ c) ^ d;
    p += q << 2;
    left -= q << 2;
  }
  const end8 = p + (left & ~(<usize>7));
  for (; p < end8; p += 8) crc = step8(crc, p);
  const end = ptr + n;
  for (; p < end; p++) crc = (crc >>> 8) ^ table(0, (crc ^ <u32>load<u8>(p)) & 0xff);
  return ~crc;
}
