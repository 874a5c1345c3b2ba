// The identical-request key. Two lens requests get the same key exactly when they would compute
// the same result: same model id and bytes (content hash), same compute type (float16 graphs round
// differently), same quantization, same prompt and same options after validation (defaults filled, layers sorted).

import { createHash } from 'node:crypto';
import type { ComputeDtype, LensInfo, LensOptions, QuantizationInfo } from './types.js';

/** Bump when a change to the lens core changes what a request returns. */
export const RESULT_FORMAT_VERSION = 2;

export function lensCacheKey(
  model: { modelId: string; contentHash: string; computeType: ComputeDtype; lenses?: LensInfo[]; quantization?: QuantizationInfo | null },
  prompt: string,
  options: LensOptions,
): string {
  const canonical = {
    v: RESULT_FORMAT_VERSION,
    modelId: model.modelId,
    model: model.contentHash,
    compute: model.computeType,
    // Quantized blocks give other numbers; absent for unquantized models, so their keys stay as they were.
    ...(model.quantization ? { quantization: `${model.quantization.mode}-b${model.quantization.blockSize}` } : {}),
    prompt,
    topK: options.topK ?? 5,
    track: options.trackAcrossLayers ?? false,
    layers: options.layers ?? null,
    points: options.points ?? ['BLOCK_OUTPUT'],
    stats: options.stats ?? false,
    generate: options.generate?.maxNewTokens ?? 0,
    // A tuned or Jacobian result depends on the lens file the model was opened with, not only on its
    // weights: its translators' hash (a file swapped under the same path and restarted gets a new key).
    lens: options.lens ?? 'LOGIT',
    lensFile: (options.lens ?? 'LOGIT') === 'LOGIT' ? null : (model.lenses?.find((l) => l.kind === options.lens)?.contentHash ?? 'missing'),
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url');
}
