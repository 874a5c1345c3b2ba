// A per-operation budget on response size. Heavy fields charge what they are about to send (an
// upper estimate of its JSON size) before building it, so an operation that would answer with more
// than the budget fails with RESPONSE_TOO_LARGE instead of building tens of megabytes first.
// Estimated rather than measured: measuring the serialized response would only notice after the
// memory and event-loop time were spent.

import type { LensReadout } from '../src/lens/types.js';
import { gatewayError } from './errors.js';

/** JSON bytes of one vocabulary id, one probability (a float64 printed in full), one cell's fixed part. */
export const ID_BYTES = 7;
export const PROB_BYTES = 22;
const CELL_BYTES = 140;
const TOKEN_PROB_BYTES = 60;

export class ResponseBudget {
  private used = 0;
  constructor(readonly maxBytes: number) {}

  charge(bytes: number, what: string): void {
    this.used += bytes;
    if (this.used > this.maxBytes) {
      throw gatewayError(
        'RESPONSE_TOO_LARGE',
        `${what} would take the response past ${this.maxBytes} bytes (about ${Math.round(this.used)} so far): ask for fewer layers, positions or predictions, or select fewer fields`,
      );
    }
  }
}

export function gridBytes(grid: readonly (readonly unknown[])[], perEntry: number): number {
  let n = 0;
  for (const row of grid) for (const inner of row) n += Array.isArray(inner) ? inner.length * perEntry + 2 : perEntry;
  return n;
}

export function trackedBytes(tracked: LensReadout['tracked'], layers: number): number {
  return (tracked ?? []).reduce((sum, t) => sum + t.tokenIds.length * (ID_BYTES + 40 + layers * PROB_BYTES) + 64, 0);
}

export function cellsBytes(cells: number, k: number): number {
  return cells * (CELL_BYTES + k * TOKEN_PROB_BYTES);
}

/** JSON bytes of one PackedArray: base64 of `elements` values of `bytesPerElement` each, plus its envelope. */
export function packedBytes(elements: number, bytesPerElement: number): number {
  return Math.ceil((elements * bytesPerElement) / 3) * 4 + 120;
}
