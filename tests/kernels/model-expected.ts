// The assertion shared by the dawn.node and Chromium model-kernel tests: a case ran (no fault) and its error is
// within the case's tolerance.
import { expect } from "vitest";
import type { ModelCase } from "./model-cases.ts";
import type { ModelCaseResult } from "./model-harness.ts";

export type ModelOutcome = ModelCaseResult | { name: string; fault: string } | undefined;

export function expectModelCase(c: ModelCase, r: ModelOutcome): void {
  expect(r, `no result for ${c.name}`).toBeDefined();
  if (!r) return;
  expect(r.name).toBe(c.name);
  expect("fault" in r ? r.fault : undefined).toBeUndefined();
  if ("fault" in r) return;
  // JSON carries Infinity and NaN (a wrong length, an unwritten NaN-poisoned output) as null.
  expect(r.error ?? Infinity, r.detail).toBeLessThanOrEqual(c.tol);
}
