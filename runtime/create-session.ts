// Session factories: the original GQA decoder and the MLA-converted decoder (expanded or absorbed read path).

import { DecoderSession, type SessionOptions } from "./decoder-session.ts";
import { GqaAttentionBackend, type GqaBackendOptions } from "./gqa-attention.ts";
import { MlaAttentionBackend, type MlaBackendOptions, type MlaReadPath } from "./mla/attention.ts";
import type { MlaModelWeights } from "./mla/weights.ts";
import type { GqaModelWeights } from "./weights.ts";

export interface GqaSession {
  readonly session: DecoderSession;
  readonly backend: GqaAttentionBackend;
}

export interface MlaSession {
  readonly session: DecoderSession;
  readonly backend: MlaAttentionBackend;
}

export function createGqaSession(model: GqaModelWeights, options: SessionOptions & GqaBackendOptions = {}): GqaSession {
  const backend = new GqaAttentionBackend(model, options);
  return { session: new DecoderSession(model.config, model.shell, backend, options), backend };
}

export function createMlaSession(model: MlaModelWeights, path: MlaReadPath, options: SessionOptions & MlaBackendOptions = {}): MlaSession {
  const backend = new MlaAttentionBackend(model, path, options);
  return { session: new DecoderSession(model.config, model.shell, backend, options), backend };
}
