// Decoders for the PACKED encoding (docs/wire-format.md): what the generated documents select under
// `packed { … }` becomes plain typed arrays. Hand-written (codegen writes the rest of src/client);
// the byte-level work is the same module the server encodes with.

import {
  unpackArray,
  unpackLayer,
  unpackLens,
  type UnpackedLayer,
  type UnpackedLens,
  type UnpackedRead,
  type UnpackedStats,
  type UnpackedTracked,
} from '../lens/packed.js';
import type { PackedArray } from '../lens/packed.js';
import type { PackedLensFieldsFragment } from './graphql.js';

export type { UnpackedLayer, UnpackedLens, UnpackedRead, UnpackedStats, UnpackedTracked };

/** `LensResult.packed { ...PackedLensFields }` → typed arrays ([layer][position][k], row-major). */
export function decodeLens(packed: PackedLensFieldsFragment): UnpackedLens {
  return unpackLens(packed);
}

/** `LayerResult.packed { topIndices topProbs }` → typed arrays ([position][k], row-major). */
export function decodeLayer(packed: { topIndices: PackedArray; topProbs: PackedArray }): UnpackedLayer {
  return unpackLayer(packed);
}

/** One array: U32 → Uint32Array, F32 → Float32Array, P16 → Float64Array of probabilities. */
export function decodeArray(a: PackedArray): Uint32Array | Float32Array | Float64Array {
  return unpackArray(a);
}

/** Position `p`'s trajectories: its tracked ids and, per layer, their probabilities. */
export function trajectories(t: UnpackedTracked, position: number, layers: number): { tokenIds: Uint32Array; probs: Float64Array[] } {
  const [from, to] = [t.offsets[position], t.offsets[position + 1]];
  const n = t.tokenIds.length;
  return {
    tokenIds: t.tokenIds.subarray(from, to),
    probs: Array.from({ length: layers }, (_, l) => t.probs.subarray(l * n + from, l * n + to)),
  };
}
