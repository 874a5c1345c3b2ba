// Tuned and Jacobian lenses of one model: the published files checked against the model, and which
// translator each (layer, read point) uses.
//
// Layer numbering, followed exactly:
// - tuned-lens applies translator i to hidden_states[i] of the HF forward (0 = embeddings, i = output of
//   block i − 1) for i < num_hidden_layers, and reads the last block's output with no translator (it is
//   the model's own output). lensgate's layer l is block l's output = hidden_states[l + 1], so layer l
//   uses translator l + 1 and the last layer none; translator 0 (the embeddings) has no lensgate layer.
// - A Jacobian lens's J[l] carries block l's output into the last block's output basis; the last
//   layer is that target itself (identity). Layers absent from the file are not read by that lens.
// After-attention reads (ATTENTION_OUTPUT of layer l) use layer l's translator too: translators are
// fitted per block output, and the mid-block residual is read through the one of the block it is in,
// as the logit lens reads it through the final norm fitted for the last block.
import { createHash } from 'node:crypto';
import { readJacobianLens, readTunedLens, type LensFile, type TranslatorKind } from '../checkpoint/lens-files.js';
import { unembedHash } from '../checkpoint/unembed-hash.js';
import type { TranslatorStack } from '../graph/translator.js';
import { LensError, type LensKind } from './types.js';

export class LensMismatchError extends LensError {
  constructor(
    /** The lens file's field that disagrees with the model (d_model, num_hidden_layers, source_layers, unembed_hash). */
    readonly field: string,
    message: string,
  ) {
    super('LENS_MISMATCH', message);
    this.name = 'LensMismatchError';
  }
}

export interface LensPaths {
  /** A tuned-lens folder (config.json + params.pt). */
  tuned?: string;
  /** A Jacobian lens file (*_jacobian_lens.pt or .safetensors). */
  jacobian?: string;
}

/** What the engine needs of a model to check its lenses. */
export interface LensTarget {
  id: string;
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  /** Row r of the unembedding [V, D] as float32 (only the few rows the hash prints are read). */
  unembedRow: (r: number) => ArrayLike<number>;
}

export interface ModelLenses {
  stacks: TranslatorStack[];
  /** Per kind: sha256 over the translators as read (see lensContentHash). */
  hashes: Map<TranslatorKind, string>;
  /** Per kind: the layers it reads and, per layer, its stack entry (0 = identity). */
  entries: Map<TranslatorKind, Map<number, number>>;
  files: LensFile[];
}

function check(file: LensFile, m: LensTarget): void {
  const name = `${file.kind === 'TUNED' ? 'tuned' : 'Jacobian'} lens ${file.path}`;
  if (file.dModel !== m.hiddenSize) {
    throw new LensMismatchError('d_model', `${name}: d_model ${file.dModel} does not match ${m.id}'s hidden size ${m.hiddenSize}`);
  }
  if (file.kind === 'TUNED' && file.numHiddenLayers !== m.numLayers) {
    throw new LensMismatchError(
      'num_hidden_layers',
      `${name}: num_hidden_layers ${file.numHiddenLayers} does not match ${m.id}'s ${m.numLayers} layers`,
    );
  }
  if (file.kind === 'JACOBIAN') {
    const out = [...file.translators.keys()].filter((l) => l >= m.numLayers);
    if (out.length) throw new LensMismatchError('source_layers', `${name}: layers [${out}] are past ${m.id}'s last layer ${m.numLayers - 1}`);
  }
  if (file.unembedHash) {
    const hash = unembedHash(m.unembedRow, m.vocabSize, m.hiddenSize);
    if (hash !== file.unembedHash) {
      throw new LensMismatchError(
        'unembed_hash',
        `${name}: unembed_hash ${file.unembedHash.slice(0, 12)}… does not match ${m.id}'s unembedding (${hash.slice(0, 12)}…): it was fitted for another model`,
      );
    }
  }
}

/** Which translator of the file reads lensgate layer l; undefined = the lens leaves it out; -1 = identity. */
function fileIndex(kind: TranslatorKind, file: LensFile, l: number, L: number): number | undefined {
  if (l === L - 1) return file.translators.has(l) && kind === 'JACOBIAN' ? l : -1;
  if (kind === 'TUNED') return l + 1;
  return file.translators.has(l) ? l : undefined;
}

/** sha256 over a lens file's translators: kind, then per layer its index, dtype, shape and bytes (weight, then bias). */
export function lensContentHash(file: LensFile): string {
  const h = createHash('sha256').update(file.kind);
  for (const [l, t] of [...file.translators].sort((a, b) => a[0] - b[0])) {
    for (const [part, x] of [['weight', t.weight], ['bias', t.bias]] as const) {
      if (!x) continue;
      h.update(`|${l}.${part}:${x.dtype}:${x.shape.join('x')}|`).update(x.bytes);
    }
  }
  return h.digest('hex');
}

/** Reads, checks and stacks the model's lens files. */
export async function loadLenses(paths: LensPaths, m: LensTarget): Promise<ModelLenses> {
  const files: LensFile[] = [];
  if (paths.tuned) files.push(await readTunedLens(paths.tuned));
  if (paths.jacobian) files.push(await readJacobianLens(paths.jacobian));
  const stacks: TranslatorStack[] = [];
  const entries = new Map<TranslatorKind, Map<number, number>>();
  const hashes = new Map<TranslatorKind, string>();
  for (const file of files) {
    check(file, m);
    hashes.set(file.kind, lensContentHash(file));
    const stack: TranslatorStack = { kind: file.kind, residual: file.kind === 'TUNED', entries: [] };
    const byLayer = new Map<number, number>();
    for (let l = 0; l < m.numLayers; l++) {
      const i = fileIndex(file.kind, file, l, m.numLayers);
      if (i === undefined) continue;
      if (i < 0) {
        byLayer.set(l, 0);
        continue;
      }
      stack.entries.push(file.translators.get(i)!);
      byLayer.set(l, stack.entries.length);
    }
    stacks.push(stack);
    entries.set(file.kind, byLayer);
  }
  return { stacks, entries, hashes, files };
}

export const LENS_KINDS: LensKind[] = ['LOGIT', 'TUNED', 'JACOBIAN'];
