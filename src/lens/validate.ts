import { type LensInfo, type LensKind, type LensOptions, type LensPoint, LensError } from './types.js';

export interface ValidRequest {
  lens: LensKind;
  ids: number[];
  topK: number;
  layers: number[];
  points: LensPoint[];
  track: boolean;
  stats: boolean;
  signal?: AbortSignal;
  onLayer?: LensOptions['onLayer'];
  /** 0 = no generation. */
  maxNewTokens: number;
  onPosition?: LensOptions['onPosition'];
  onNormed?: LensOptions['onNormed'];
}

const POINT_ORDER: LensPoint[] = ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'];

export function validate(
  prompt: unknown,
  ids: number[],
  options: LensOptions,
  dims: { id?: string; numLayers: number; vocabSize: number; maxPositions: number; lenses?: LensInfo[] },
): ValidRequest {
  const bad = (msg: string) => new LensError('BAD_USER_INPUT', msg);
  if (typeof prompt !== 'string' || prompt.length === 0) throw bad('prompt must be a non-empty string');
  if (ids.length === 0) throw bad('prompt encodes to zero tokens');
  if (ids.length > dims.maxPositions) {
    throw new LensError('PROMPT_TOO_LONG', `prompt is ${ids.length} tokens; this model takes at most ${dims.maxPositions}`);
  }
  const topK = options.topK ?? 5;
  if (!Number.isInteger(topK) || topK < 1 || topK > dims.vocabSize) {
    throw bad(`topK must be an integer in [1, ${dims.vocabSize}], got ${topK}`);
  }
  const lens = options.lens ?? 'LOGIT';
  const lensInfo = lensOf(lens, dims);
  let layers = lensInfo ? [...lensInfo.layers] : Array.from({ length: dims.numLayers }, (_, i) => i);
  if (options.layers !== undefined && options.layers !== null) {
    if (!Array.isArray(options.layers) || options.layers.length === 0) throw bad('layers must be a non-empty list when given');
    for (const l of options.layers) {
      if (!Number.isInteger(l) || l < 0 || l >= dims.numLayers) {
        throw bad(`layer ${l} is out of range: this model has layers 0..${dims.numLayers - 1}`);
      }
    }
    if (new Set(options.layers).size !== options.layers.length) throw bad('layers contains duplicates');
    layers = [...options.layers].sort((a, b) => a - b);
    const missing = lensInfo ? layers.filter((l) => !lensInfo.layers.includes(l)) : [];
    if (missing.length) {
      throw new LensError('LENS_UNAVAILABLE', `the ${lens} lens has no translator for layer(s) ${missing.join(', ')}; it reads layers ${lensInfo!.layers.join(', ')}`);
    }
  }
  const requested = options.points ?? ['BLOCK_OUTPUT'];
  if (!Array.isArray(requested) || requested.length === 0) throw bad('points must be a non-empty list when given');
  for (const p of requested) if (!POINT_ORDER.includes(p)) throw bad(`unknown lens point ${p}`);
  const points = POINT_ORDER.filter((p) => requested.includes(p));
  let maxNewTokens = 0;
  if (options.generate !== undefined && options.generate !== null) {
    maxNewTokens = options.generate.maxNewTokens;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw bad(`generate.maxNewTokens must be an integer ≥ 1, got ${maxNewTokens}`);
    if (ids.length + maxNewTokens > dims.maxPositions) {
      throw new LensError(
        'PROMPT_TOO_LONG',
        `prompt (${ids.length} tokens) + maxNewTokens (${maxNewTokens}) exceeds this model's ${dims.maxPositions} positions`,
      );
    }
  }
  return {
    lens,
    ids,
    topK,
    layers,
    points,
    track: options.trackAcrossLayers ?? false,
    stats: options.stats ?? false,
    signal: options.signal,
    onLayer: options.onLayer,
    maxNewTokens,
    onPosition: options.onPosition,
    onNormed: options.onNormed,
  };
}

/** The model's entry for a lens kind; throws LENS_UNAVAILABLE for a kind it lacks. */
export function lensOf(lens: unknown, dims: { id?: string; lenses?: LensInfo[] }): LensInfo | undefined {
  if (lens !== 'LOGIT' && lens !== 'TUNED' && lens !== 'JACOBIAN') throw new LensError('BAD_USER_INPUT', `unknown lens kind ${String(lens)}`);
  if (!dims.lenses) {
    if (lens === 'LOGIT') return undefined;
    throw new LensError('LENS_UNAVAILABLE', `${dims.id ?? 'this model'} serves no ${lens} lens`);
  }
  const info = dims.lenses.find((x) => x.kind === lens);
  if (!info) {
    throw new LensError(
      'LENS_UNAVAILABLE',
      `${dims.id ?? 'this model'} serves no ${lens} lens (available: ${dims.lenses.map((x) => x.kind).join(', ')})`,
    );
  }
  return info;
}
