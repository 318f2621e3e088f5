// One decoder session per conversation over a loaded model (original GQA, or MLA on the absorbed / expanded read path),
// optionally with the MLA cache stored through the codec (stored-cache.ts).

import { mlaCacheSpec } from "../../runtime/mla/weights.ts";
import { createGqaSession, createMlaSession } from "../../runtime/create-session.ts";
import type { DecoderSession } from "../../runtime/decoder-session.ts";
import type { MlaReadPath } from "../../runtime/mla/attention.ts";
import type { ImageGrid } from "../../runtime/rope-index.ts";
import { EvalError } from "./errors.ts";
import { StoredCacheSimulator, type StoredCacheOptions } from "./stored-cache.ts";
import type { LoadedDecoder } from "./vlm-dir.ts";

export interface SessionSettings {
  /** MLA read path (default absorbed: the latent-only decode mla-edge ships). */
  readonly path?: MlaReadPath;
  /** Store the MLA cache through the codec; absent = float32 cache. */
  readonly stored?: StoredCacheOptions;
}

/** A conversation: the session plus `commit()`, called after every append that belongs to the history. */
export interface EvalSession {
  readonly session: DecoderSession;
  commit(): void;
}

export function openEvalSession(decoder: LoadedDecoder, grid: ImageGrid, settings: SessionSettings = {}): EvalSession {
  if (decoder.kind === "original") {
    if (settings.stored) throw new EvalError("bad_options", "a codec applies to the latent cache of an MLA model; this folder holds the original model");
    const { session } = createGqaSession(decoder.model, { defaultImageGrid: grid });
    return { session, commit: () => {} };
  }
  const sim = settings.stored ? new StoredCacheSimulator(mlaCacheSpec(decoder.model), settings.stored) : null;
  const { session, backend } = createMlaSession(decoder.model, settings.path ?? "absorbed", {
    defaultImageGrid: grid,
    onCacheWrite: sim?.onCacheWrite,
  });
  return { session, commit: () => sim?.commit(backend, session.length) };
}
