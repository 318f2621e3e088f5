// A fetch() over a local folder for loadBundle in Node (dawn.node engines, `mla-edge generate`): `folderFetch(dir)`
// answers `<base>/<file>` with the file's bytes streamed from disk (a 404 Response when absent), so a bundle on disk
// loads through the same code path — streaming, hashing, sink windows — as one served over HTTP.

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { join, normalize, sep } from "node:path";
import { Readable } from "node:stream";

/** Base URL to pass to loadBundle together with folderFetch. */
export const FOLDER_BASE = "bundle://local/";

export function folderFetch(dir: string): (url: string, init?: { signal?: AbortSignal }) => Promise<Response> {
  const root = normalize(dir + sep);
  return async (url, init) => {
    if (!url.startsWith(FOLDER_BASE)) return new Response(null, { status: 404 });
    const file = normalize(join(root, decodeURIComponent(url.slice(FOLDER_BASE.length))));
    if (!file.startsWith(root)) return new Response(null, { status: 404 });
    const st = await stat(file).catch(() => null);
    if (!st?.isFile()) return new Response(null, { status: 404 });
    const stream = createReadStream(file, { highWaterMark: 1 << 20, signal: init?.signal });
    return new Response(Readable.toWeb(stream) as ReadableStream<Uint8Array>, { status: 200, headers: { "content-length": String(st.size) } });
  };
}
