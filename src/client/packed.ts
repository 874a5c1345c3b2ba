// Decoders for the PACKED encoding (docs/wire-format.md): what the generated documents select under
// `packed { … }` becomes plain typed arrays. Hand-written (codegen writes the rest of src/client);
// the byte-level work is the same module the server encodes with.

import {
  unpackArray,
  unpackLayer,
  unpackLens,
  unpackTracked,
  type UnpackedLayer,
  type UnpackedLens,
  type UnpackedRead,
  type UnpackedStats,
  type UnpackedTracked,
} from '../lens/packed.js';
import type { PackedArray, PackedLensIn } from '../lens/packed.js';
import type { PackedLensFieldsFragment, PackedTrackedLensFieldsFragment } from './graphql.js';

export type { UnpackedLayer, UnpackedLens, UnpackedRead, UnpackedStats, UnpackedTracked };

/**
 * `LensResult.packed { … }` → typed arrays ([layer][position][k], row-major). The selection needs
 * topIndices and topProbs, or topLocal with the tracked arrays (PackedLensFields, PackedTrackedLensFields).
 */
export function decodeLens(packed: PackedLensFieldsFragment | PackedTrackedLensFieldsFragment | PackedLensIn): UnpackedLens {
  return unpackLens(packed);
}

/** `LayerResult.packed { topIndices topProbs }` → typed arrays ([position][k], row-major). */
export function decodeLayer(packed: { topIndices: PackedArray; topProbs: PackedArray }): UnpackedLayer {
  return unpackLayer(packed);
}

/** One array: U8/U16/U32 → Uint8Array/Uint16Array/Uint32Array, F32 → Float32Array, P16v2 → Float64Array of probabilities. */
export function decodeArray(a: PackedArray): Uint8Array | Uint16Array | Uint32Array | Float32Array | Float64Array {
  return unpackArray(a);
}

/** `trackedCounts`, `trackedIds`, `trackedProbs` alone (e.g. a completed stream's trajectories) → offsets, ids, probs. */
export function decodeTracked(counts: PackedArray, ids: PackedArray, probs: PackedArray): UnpackedTracked {
  return unpackTracked(counts, ids, probs);
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
