import type { Provider } from '../runtime/sessions.js';
import type { OpenOptions } from './types.js';

export interface PrepackInput {
  mode: NonNullable<OpenOptions['prepack']>;
  budget?: number;
  castPerCall: boolean;
  provider: Provider;
  /** Bytes of a float32 packed copy of the unembedding and of all blocks' weights. */
  headFloat32Bytes: number;
  blocksFloat32Bytes: number;
  /** Checkpoint bytes the graphs map. */
  weightBytes: number;
}

/**
 * Which sessions let ORT prepack. Measured on GPT-2-small (2 cores): prepacking halved the lens head
 * (250 → 114 ms for 20 tokens × 12 layers) and sped the blocks up, for one packed float32 copy of
 * the weights in anonymous memory. So 'auto' spends the memory budget on the head first (the
 * largest GEMMs), then on the blocks if they fit too.
 *
 * `headFloat32`: the share of the unembedding's vocabulary rows kept as a float32 copy (16-bit
 * weights widened per call only; 0 otherwise).
 */
export function planPrepacking(p: PrepackInput): { head: boolean; blocks: boolean; headFloat32: number } {
  // 16-bit weights widened per call are not constant to ORT: nothing to prepack. But the head, read by
  // every call (every layer when streaming), keeps as many of its vocabulary rows in float32 as the
  // budget allows and widens only the rest per call: widening the whole [V, D] per call made streamed
  // requests several times slower (1B shape, 20 rows: 2.0–5.1 s chunked vs 1.1–1.5 s from a float32
  // copy, loaded machine). The float32 rows are prepacked like a float32 checkpoint's head (RSS
  // unchanged: ORT drops the folded copy it packed).
  if (p.castPerCall) {
    // No 1 GiB floor here, and 15% of the files rather than 30%: RSS must stay under 1.3x of them. The
    // float32 rows add their bytes (prepacked) and unmap their 16-bit pages; the tied 1B shape after
    // 3 streamed lenses (bench large --budgets): budget 0 → 1.18x, 10% (24% of its rows float32) →
    // 1.23x, 20% (47%) → 1.28x, 30% (71%) → 1.33x, the whole head (42% of the files) 1.40x; at 20%
    // after 10 streamed lenses 1.31x and after a deferred pass 1.34x, so 15%.
    const budget = p.budget ?? 0.15 * p.weightBytes;
    const headFloat32 = p.provider === 'cpu' && p.headFloat32Bytes > 0 ? Math.min(1, Math.max(0, budget / p.headFloat32Bytes)) : 0;
    return { head: headFloat32 > 0 && p.mode !== 'none', blocks: false, headFloat32 };
  }
  const budget = p.budget ?? Math.max(0.3 * p.weightBytes, 2 ** 30);
  // CUDA does not prepack.
  if (p.provider !== 'cpu' || p.mode === 'none') return { head: false, blocks: false, headFloat32: 0 };
  if (p.mode === 'head') return { head: true, blocks: false, headFloat32: 0 };
  if (p.mode === 'all') return { head: true, blocks: true, headFloat32: 0 };
  const head = p.headFloat32Bytes <= budget;
  const blocks = head && p.headFloat32Bytes + p.blocksFloat32Bytes <= budget;
  return { head, blocks, headFloat32: 0 };
}
