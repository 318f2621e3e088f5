// The restore header's encoding, JSON (wire format version 1) vs MessagePack (version 2, on the wire) (format/wire/control-msgpack.ts): encoded bytes and
// encode + decode time at 512 and 2,048 entries (32K and 128K tokens of Qwen2.5-VL-7B at C = 64 with two layer ranges
// per slot), measured in the same process and run. Used by `npm run bench:store` (`wire.*`) and its test.
import { decodeRestoreHeaderMsgpack, encodeRestoreHeaderMsgpack } from "../../format/wire/control-msgpack.ts";
import type { RestoreChunkInfo, RestoreHeader } from "../../format/wire/messages.ts";
import { checkRestoreHeader } from "../../format/wire/restore-check.ts";

/** A full restore header of `entries` chunks: slots of 64 tokens, each two layer ranges of 14 (28 layers), distinct keys. */
export function restoreHeader(entries: number): RestoreHeader {
  const chunks: RestoreChunkInfo[] = [];
  for (let i = 0; i < entries; i++) {
    const slot = i >> 1;
    const key = Array.from({ length: 32 }, (_, b) => (b === 0 ? i >> 8 : b === 1 ? i & 0xff : (i * 131 + b * 17) & 0xff).toString(16).padStart(2, "0")).join("");
    chunks.push({ slot, tokenStart: slot * 64, tokenCount: 64, layerStart: (i & 1) * 14, layerCount: 14, sealed: true, bytes: 917_600 + (i % 7), key });
  }
  const tokens = (entries >> 1) * 64;
  return { head: Math.max(1, entries >> 4), tokens, from: 0, to: tokens, layerStart: 0, layerEnd: 28, chunks };
}

export interface HeaderEncodingResult {
  readonly entries: number;
  readonly jsonBytes: number;
  readonly msgpackBytes: number;
  /** JSON bytes over MessagePack bytes. */
  readonly bytesRatio: number;
  /** Median µs of one encode + decode (+ the same header checks on both sides). */
  readonly jsonUs: number;
  readonly msgpackUs: number;
  /** JSON time over MessagePack time. */
  readonly parseSpeedup: number;
  /** Median µs of the decode (+ checks) alone: what a client spends before it can place the first chunk. */
  readonly jsonDecodeUs: number;
  readonly msgpackDecodeUs: number;
  readonly decodeSpeedup: number;
}

const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

/** Interleaved JSON / MessagePack rounds (so machine load hits both alike), median of `reps` timed loops. */
export function measureHeaderEncoding(entries: number, reps = 15): HeaderEncodingResult {
  const h = restoreHeader(entries);
  const enc = new TextEncoder();
  const dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
  const json = (): Uint8Array => enc.encode(JSON.stringify(h));
  const jsonRound = (): RestoreHeader => checkRestoreHeader(JSON.parse(dec.decode(json())));
  const msgpackRound = (): RestoreHeader => decodeRestoreHeaderMsgpack(encodeRestoreHeaderMsgpack(h));
  const jsonBody = json();
  const msgpackBody = encodeRestoreHeaderMsgpack(h);
  const jsonDecode = (): RestoreHeader => checkRestoreHeader(JSON.parse(dec.decode(jsonBody)));
  const msgpackDecode = (): RestoreHeader => decodeRestoreHeaderMsgpack(msgpackBody);
  const inner = Math.max(1, Math.round(4096 / entries));
  const time = (f: () => unknown): number => {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) f();
    return ((performance.now() - t0) * 1000) / inner;
  };
  for (let i = 0; i < 5; i++) {
    jsonRound();
    msgpackRound();
  }
  const tj: number[] = [];
  const tm: number[] = [];
  const dj: number[] = [];
  const dm: number[] = [];
  for (let r = 0; r < reps; r++) {
    if (r % 2 === 0) {
      tj.push(time(jsonRound));
      tm.push(time(msgpackRound));
      dj.push(time(jsonDecode));
      dm.push(time(msgpackDecode));
    } else {
      dm.push(time(msgpackDecode));
      dj.push(time(jsonDecode));
      tm.push(time(msgpackRound));
      tj.push(time(jsonRound));
    }
  }
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const jsonBytes = json().length;
  const msgpackBytes = encodeRestoreHeaderMsgpack(h).length;
  return {
    entries,
    jsonBytes,
    msgpackBytes,
    bytesRatio: round(jsonBytes / msgpackBytes),
    jsonUs: round(med(tj), 1),
    msgpackUs: round(med(tm), 1),
    parseSpeedup: round(med(tj) / med(tm)),
    jsonDecodeUs: round(med(dj), 1),
    msgpackDecodeUs: round(med(dm), 1),
    decodeSpeedup: round(med(dj) / med(dm)),
  };
}
