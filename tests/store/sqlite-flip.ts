// Flips a byte inside every stored copy of a byte pattern in a SQLite database and its write-ahead log, keeping the WAL
// valid: WAL frames carry cumulative checksums (sqlite.org/fileformat2.html §4.3), so a flipped frame would make SQLite
// drop it and every later frame (lost writes, not a corrupt row). The main file has no page checksums.
import { readFile, writeFile } from "node:fs/promises";

const WAL_HEADER = 32;
const FRAME_HEADER = 24;

function checksum(data: Uint8Array, s0: number, s1: number, bigEndian: boolean): [number, number] {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < data.length; i += 8) {
    s0 = (s0 + dv.getUint32(i, !bigEndian) + s1) >>> 0;
    s1 = (s1 + dv.getUint32(i + 4, !bigEndian) + s0) >>> 0;
  }
  return [s0, s1];
}

/** XORs `mask` into byte `at` of every occurrence of `needle` in `bytes`; returns the count. */
function flipAll(bytes: Uint8Array, needle: Uint8Array, at: number, mask: number): number {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let n = 0;
  for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + 1)) {
    buf[i + at] ^= mask;
    n++;
  }
  return n;
}

/** Flips in the main database file. */
export async function flipInDatabase(path: string, needle: Uint8Array, at: number, mask = 0x10): Promise<number> {
  const bytes = await readFile(path);
  const n = flipAll(bytes, needle, at, mask);
  if (n > 0) await writeFile(path, bytes);
  return n;
}

/** Flips in every valid WAL frame and rewrites the checksum chain. */
export async function flipInWal(path: string, needle: Uint8Array, at: number, mask = 0x10): Promise<number> {
  const bytes = new Uint8Array(await readFile(path));
  if (bytes.length < WAL_HEADER) return 0;
  const dv = new DataView(bytes.buffer);
  const magic = dv.getUint32(0);
  if (magic !== 0x377f0682 && magic !== 0x377f0683) throw new Error(`${path} is not a SQLite WAL`);
  const bigEndian = (magic & 1) === 1;
  const pageSize = dv.getUint32(8);
  const salt = [dv.getUint32(16), dv.getUint32(20)];
  let orig = checksum(bytes.subarray(0, 24), 0, 0, bigEndian);
  let next = orig;
  let flipped = 0;
  for (let off = WAL_HEADER; off + FRAME_HEADER + pageSize <= bytes.length; off += FRAME_HEADER + pageSize) {
    if (dv.getUint32(off + 8) !== salt[0] || dv.getUint32(off + 12) !== salt[1]) break;
    const head = bytes.subarray(off, off + 8);
    const page = bytes.subarray(off + FRAME_HEADER, off + FRAME_HEADER + pageSize);
    orig = checksum(page, ...checksum(head, orig[0], orig[1], bigEndian), bigEndian);
    if (orig[0] !== dv.getUint32(off + 16) || orig[1] !== dv.getUint32(off + 20)) break; // SQLite stops here too
    flipped += flipAll(page, needle, at, mask);
    next = checksum(page, ...checksum(head, next[0], next[1], bigEndian), bigEndian);
    dv.setUint32(off + 16, next[0]);
    dv.setUint32(off + 20, next[1]);
  }
  if (flipped > 0) await writeFile(path, bytes);
  return flipped;
}
