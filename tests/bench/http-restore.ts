// A restore read with node:http and an incremental frame scanner that copies no chunk bytes, for bench:store's timed
// comparison: a lighter client than fetch (undici, WHATWG streams, a copy per frame), so the comparison weighs the
// store more and the client less. In bench:store runs both restores were faster this way (docs/api.md).
import http from "node:http";
import { decodeErrorBody, decodeRestoreTrailer } from "../../format/wire/control-msgpack.ts";
import { FRAME_HEADER_BYTES, FrameType } from "../../format/wire/frames.ts";

const agent = new http.Agent({ keepAlive: true });

export interface HttpRestore {
  /** Chunk bytes received (chunk and chunk-run payloads). */
  readonly bytes: number;
  /** Chunk-carrying frames. */
  readonly frames: number;
}

/**
 * Streams `url` and checks the framing: a header, chunk frames, then a MessagePack `{done, chunks, bytes}` trailer whose
 * bytes match (the header is not decoded: the timed comparison weighs the store, as before the switch to MessagePack).
 */
export function httpRestore(url: string, headers: Record<string, string>, timeoutMs = 60_000): Promise<HttpRestore> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers, timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (s: string) => (body += s));
        res.on("end", () => reject(new Error(`restore: ${res.statusCode} ${body}`)));
        return;
      }
      const head = new Uint8Array(FRAME_HEADER_BYTES);
      let headFill = 0;
      let type = 0;
      let left = 0;
      let control: Uint8Array[] | null = null;
      const controls: Buffer[] = [];
      let bytes = 0;
      let frames = 0;
      let error: string | null = null;
      res.on("data", (buf: Buffer) => {
        let at = 0;
        while (at < buf.length) {
          if (left === 0 && headFill < FRAME_HEADER_BYTES) {
            const n = Math.min(FRAME_HEADER_BYTES - headFill, buf.length - at);
            head.set(buf.subarray(at, at + n), headFill);
            headFill += n;
            at += n;
            if (headFill < FRAME_HEADER_BYTES) break;
            type = head[0];
            left = new DataView(head.buffer).getUint32(1, true);
            if (type === FrameType.chunk || type === FrameType.chunks) frames++;
            control = type === FrameType.control || type === FrameType.error ? [] : null;
            if (left > 0) continue;
          }
          const n = Math.min(left, buf.length - at);
          if (control !== null) control.push(buf.subarray(at, at + n));
          else bytes += n;
          left -= n;
          at += n;
          if (left === 0) {
            if (control !== null) {
              const payload = Buffer.concat(control);
              if (type === FrameType.error) error = JSON.stringify(decodeErrorBody(payload).error);
              else controls.push(payload);
            }
            headFill = 0;
            control = null;
          }
        }
      });
      res.on("end", () => {
        if (error !== null) return reject(new Error(`restore error frame: ${error}`));
        if (headFill !== 0 || left !== 0) return reject(new Error("restore stream ended inside a frame"));
        let trailer: { done: boolean; bytes: number } | null = null;
        try {
          trailer = controls.length === 2 ? decodeRestoreTrailer(controls[1]) : null;
        } catch (e) {
          return reject(e instanceof Error ? e : new Error(String(e)));
        }
        if (trailer?.done !== true || trailer.bytes !== bytes) return reject(new Error(`restore stream without a matching trailer (${controls.length} control frames, ${bytes} B)`));
        resolve({ bytes, frames });
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`restore: no answer in ${timeoutMs} ms`)));
    req.on("error", reject);
  });
}
