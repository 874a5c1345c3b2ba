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

/**
 * Bounds a caller may add to the model's own (the gateway's per-server limits). Checked here with
 * the model's bounds so each error names the bound that applies.
 */
export interface RequestLimits {
  /** Most predictions per cell; the model's vocabulary bounds it too. */
  maxTopK?: number;
  /** Most tokens one request may generate. */
  maxNewTokens?: number;
}

/**
 * The one validation of a lens request (the engine's and the gateway's). `ids` is the prompt's
 * tokenization by the model's own tokenizer, done once by whoever calls.
 */
export function validate(
  prompt: unknown,
  ids: number[],
  options: LensOptions,
  dims: { id?: string; numLayers: number; vocabSize: number; maxPositions: number; lenses?: LensInfo[] },
  limits: RequestLimits = {},
): ValidRequest {
  const bad = (msg: string) => new LensError('BAD_USER_INPUT', msg);
  const model = dims.id ?? 'this model';
  if (typeof prompt !== 'string' || prompt.length === 0) throw bad('prompt must not be empty');
  if (ids.length === 0) throw bad('prompt encodes to zero tokens');
  if (ids.length > dims.maxPositions) {
    throw new LensError('PROMPT_TOO_LONG', `prompt has ${ids.length} tokens; ${model} accepts at most ${dims.maxPositions}`);
  }
  // Ids may come from the caller (LensOptions.promptIds); one outside the table would read past it.
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= dims.vocabSize) throw bad(`token id ${id} is outside the vocabulary (0..${dims.vocabSize - 1})`);
  }
  const topK = options.topK ?? 5;
  const maxK = Math.min(dims.vocabSize, limits.maxTopK ?? Infinity);
  if (!Number.isInteger(topK) || topK < 1 || topK > maxK) {
    throw bad(`topK must be an integer between 1 and ${maxK}, got ${topK}`);
  }
  const lens = options.lens ?? 'LOGIT';
  const lensInfo = lensOf(lens, dims);
  let layers = lensInfo ? [...lensInfo.layers] : Array.from({ length: dims.numLayers }, (_, i) => i);
  if (options.layers !== undefined && options.layers !== null) {
    if (!Array.isArray(options.layers) || options.layers.length === 0) throw bad('layers must not be empty (omit it for all layers)');
    const seen = new Set<number>();
    for (const l of options.layers) {
      if (!Number.isInteger(l) || l < 0 || l >= dims.numLayers) {
        throw bad(`layer ${l} is out of range: ${model} has layers 0..${dims.numLayers - 1}`);
      }
      if (seen.has(l)) throw bad(`layer ${l} is listed twice`);
      seen.add(l);
    }
    layers = [...options.layers].sort((a, b) => a - b);
    const missing = lensInfo ? layers.filter((l) => !lensInfo.layers.includes(l)) : [];
    if (missing.length) {
      throw new LensError('LENS_UNAVAILABLE', `the ${lens} lens of ${model} does not read layer(s) ${missing.join(', ')}; it reads ${lensInfo!.layers.join(', ')}`);
    }
  }
  const requested = options.points ?? ['BLOCK_OUTPUT'];
  if (!Array.isArray(requested) || requested.length === 0) throw bad('points must not be empty (omit it for BLOCK_OUTPUT)');
  for (const p of requested) if (!POINT_ORDER.includes(p)) throw bad(`unknown lens point ${p}`);
  if (new Set(requested).size !== requested.length) throw bad('points contains duplicates');
  // Reported in residual-stream order whatever order they were asked in: block output first.
  const points = POINT_ORDER.filter((p) => requested.includes(p));
  let maxNewTokens = 0;
  if (options.generate !== undefined && options.generate !== null) {
    maxNewTokens = options.generate.maxNewTokens;
    const most = limits.maxNewTokens;
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1 || (most !== undefined && maxNewTokens > most)) {
      throw bad(`generate.maxNewTokens must be an integer ≥ 1${most !== undefined ? ` and ≤ ${most} (server limit)` : ''}, got ${maxNewTokens}`);
    }
    if (ids.length + maxNewTokens > dims.maxPositions) {
      throw new LensError(
        'PROMPT_TOO_LONG',
        `prompt (${ids.length} tokens) + maxNewTokens (${maxNewTokens}) exceeds the ${dims.maxPositions} positions ${model} takes`,
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
