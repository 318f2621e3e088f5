// The loader's cache in Node: one file per content hash in a folder, written to a temp name and renamed (a crash never
// leaves a truncated entry under a real key; the loader re-hashes every entry it reads anyway).

import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BundleCache } from "./bundle-loader.ts";

const KEY = /^sha256-[0-9a-f]{64}$/;

export class FolderBundleCache implements BundleCache {
  constructor(readonly dir: string) {}

  private path(key: string): string {
    if (!KEY.test(key)) throw new RangeError(`bad cache key ${key}`);
    return join(this.dir, `${key}.bin`);
  }

  async get(key: string): Promise<Uint8Array | null> {
    try {
      const b = await readFile(this.path(key));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return null;
      throw e;
    }
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = `${this.path(key)}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, this.path(key));
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }
}
