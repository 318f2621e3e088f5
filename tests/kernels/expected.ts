// Pass criteria shared by every backend's test: relative error vs the f64 reference, and structural checks.
import { expect } from "vitest";
import { cacheLayout, cacheRegions } from "../../kernels/geometry.ts";
import type { KernelCase } from "./cases.ts";
import type { CaseResult, ConcurrentResult, SessionResult } from "./harness.ts";

/** Relative error bound on dequantized inputs (issue acceptance criterion). */
export const MAX_RELATIVE_ERROR = 1e-4;
/** The dequantize kernel computes q·s + z in f32 like the reference's rounding of exact products: ≤ 1 ulp. */
export const MAX_DEQUANT_ERROR = 1e-6;

export function expectCaseResult(c: KernelCase, r: CaseResult | { name: string; error: string }): void {
  expect(r.name).toBe(c.name);
  if ("error" in r) throw new Error(`${c.name}: ${r.error}`);
  for (const e of [...r.latentError, ...r.massError]) expect(e).toBeLessThanOrEqual(MAX_RELATIVE_ERROR);
  expect(r.dequantError).toBeLessThanOrEqual(MAX_DEQUANT_ERROR);
  expect(r.latentError).toHaveLength(c.geometry.spaces);
  // Σ_m Pᵐ = 1 per (query, head); an absent modality gets exactly zero mass.
  const total = r.massTotal.reduce((a, b) => a + b, 0);
  expect(total).toBeCloseTo(c.queryCount * c.geometry.heads, 3);
  if (c.geometry.spaces === 2 && c.modality === "text") expect(r.massTotal[1]).toBe(0);
  if (c.geometry.spaces === 2 && c.modality === "image") expect(r.massTotal[0]).toBe(0);
  // In-place growth: O(log) reallocations, never one per chunk.
  expect(r.reallocations).toBeLessThanOrEqual(Math.ceil(Math.log2(Math.max(1, r.capacity / 64))));
  // Storage at the final capacity: 2 layers of regions + 2 f32 tails of 64 rows + modality bits; GPU buffers round each
  // of the 5 buffers up to 16 bytes.
  const layout = cacheLayout(c.geometry, c.encoding);
  const exact = 2 * cacheRegions(layout, r.capacity).words * 4 + 2 * 64 * layout.tailStride * 4 + (r.capacity / 32) * 4;
  expect(r.allocatedBytes).toBeGreaterThanOrEqual(exact);
  expect(r.allocatedBytes).toBeLessThan(exact + 5 * 16);
}

export function expectConcurrentResult(r: ConcurrentResult | undefined): void {
  expect(r).toBeDefined();
  expect(r!.calls).toBe(4);
  expect(r!.worst).toBeLessThanOrEqual(MAX_RELATIVE_ERROR);
}

export function expectSessionResult(r: SessionResult | undefined): void {
  expect(r).toBeDefined();
  expect(r!.steps).toBe(12);
  expect(r!.worst).toBeLessThanOrEqual(MAX_RELATIVE_ERROR);
  // 64 → 128 once: the 11 decode steps and the turn write in place.
  expect(r!.reallocations).toBe(1);
  expect(r!.capacity).toBe(128);
}
