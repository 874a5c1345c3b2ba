// The viewer's state and every decision about it, without the DOM: what a run is, how streamed
// layers and the completed result update it, pins and their trajectories, colour scales, the lens
// input a form produces. The view modules draw this; test/viewer/state.test.ts checks it in Node.

import type { LensInput, LensKind, LensPoint, ModelsQuery, ViewerLensSubscription, ViewerResultFieldsFragment, ViewerResultQuery } from '../client/graphql.js';
import { decodeArray, decodeLayer, decodeLens, decodeTracked } from '../client/packed.js';
import type { PackedArray } from '../lens/packed.js';
import type { Series } from './chart.js';
import { makeScale, type ColorMode, type Scale } from './colors.js';
import { ms, quoted } from './format.js';
import { GatewayError } from './transport.js';

export type Model = ModelsQuery['models'][number];
export type LensEvent = ViewerLensSubscription['lensLayers'];
export type Started = Extract<LensEvent, { __typename: 'LensStarted' }>;
export type LayerEvent = Extract<LensEvent, { __typename: 'LayerResult' }>;
export type PositionEvent = Extract<LensEvent, { __typename: 'PositionResult' }>;
/** A completed result as it arrives (PACKED: trajectories and stats as typed arrays). */
export type Completed = ViewerResultFieldsFragment;
export type Stored = NonNullable<ViewerResultQuery['lensResult']>;
export type Token = Started['tokens'][number];

export interface TrackedView {
  position: number;
  tokenIds: number[];
  tokens: Array<{ text: string }>;
  /** [layer index][j]: probability of tokenIds[j]. */
  probs: number[][];
}

export interface StatsView {
  /** [layer index][position]. */
  entropy: number[][];
  klToFinal: number[][];
  finalTop1Rank: number[][];
}

/** A completed result, decoded: what the view reads once a run is done. */
export interface ResultView {
  id: string;
  layers: number[];
  generation: Completed['generation'];
  timings: Completed['timings'];
  tracked: TrackedView[] | null;
  stats: StatsView | null;
  attention: { tracked: TrackedView[] | null; stats: StatsView | null } | null;
}

export interface Pred {
  id: number;
  text: string;
  prob: number;
}

export interface Row {
  layer: number;
  /** Index of `layer` among the requested layers (how stats and trajectories are indexed). */
  li: number;
  point: LensPoint;
  /** [position] top-k, filled when the layer arrives. */
  preds: Pred[][] | null;
}

export interface Run {
  input: LensInput;
  tokens: Token[];
  layers: number[];
  points: LensPoint[];
  /** Display order: last layer on top; inside a layer the attention read sits below the block output. */
  rows: Row[];
  received: number;
  expected: number;
  result: ResultView | null;
  t0: number;
  tFirst: number | null;
  tEnd: number | null;
}

export interface Pin {
  position: number;
  tokenId: number;
  text: string;
  color: string;
}

export type Phase = 'loading' | 'idle' | 'running' | 'done' | 'error' | 'stopped';

/** What the form holds; also what the URL keeps. Text fields stay text until a run reads them. */
export interface Settings {
  model: string;
  prompt: string;
  topK: string;
  layers: string;
  track: boolean;
  stats: boolean;
  attn: boolean;
  color: ColorMode;
  /** Tokens to generate after the prompt ('' or '0' = none). */
  generate?: string;
  /** Comparison mode: run lensCompare of this prompt/model (a) against promptB under modelB (b). */
  compare?: boolean;
  modelB?: string;
  promptB?: string;
  /** Lens kind (LOGIT when absent or when the model lacks it). */
  lens?: string;
}

export const PIN_COLORS = ['#d9480f', '#2557c7', '#2b8a3e', '#ae3ec9', '#e8590c', '#0c8599', '#c2255c', '#5c940d'];

/** "0-3, 6, -1" → [0, 1, 2, 3, 6, numLayers-1]; negative numbers count from the end, as in Python. */
export function parseLayers(text: string, numLayers: number): number[] | null {
  const t = text.trim();
  if (t === '' || t === 'all') return null;
  const out: number[] = [];
  for (const part of t.split(/[\s,]+/).filter(Boolean)) {
    const range = /^(\d+)\s*(?:-|\.\.|:)\s*(\d+)$/.exec(part);
    if (range) {
      const a = Number(range[1]);
      const b = Number(range[2]);
      for (let l = Math.min(a, b); l <= Math.max(a, b); l++) out.push(l);
    } else if (/^-?\d+$/.test(part)) {
      const n = Number(part);
      out.push(n < 0 ? numLayers + n : n);
    } else {
      throw new GatewayError('BAD_USER_INPUT', `layers: cannot read "${part}" (use e.g. "0-3, 6, -1")`);
    }
  }
  return out;
}

/** The lens input the settings ask for; range checks are the server's (its errors carry codes). */
export function lensInput(settings: Settings, model: Model | undefined): LensInput {
  if (!model) throw new GatewayError('MODEL_NOT_FOUND', 'No model is selected');
  const topK = Number(settings.topK);
  if (settings.topK.trim() === '' || !Number.isInteger(topK)) {
    throw new GatewayError('BAD_USER_INPUT', `top-k must be a whole number, got "${settings.topK}"`);
  }
  const points: LensPoint[] = settings.attn ? ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] : ['BLOCK_OUTPUT'];
  const gen = (settings.generate ?? '').trim();
  const maxNewTokens = gen === '' ? 0 : Number(gen);
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new GatewayError('BAD_USER_INPUT', `generate must be a whole number of tokens, got "${settings.generate}"`);
  }
  return {
    model: model.id,
    prompt: settings.prompt,
    lens: lensKindFor(settings, model),
    topK,
    layers: parseLayers(settings.layers, model.numLayers ?? 0),
    trackAcrossLayers: settings.track,
    stats: settings.stats,
    points,
    ...(maxNewTokens > 0 ? { generate: { maxNewTokens } } : {}),
  };
}

/**
 * The two inputs of a comparison: a is the main prompt and model; b is promptB under modelB (the
 * same model when none is chosen). Both read the same layer list and generate the same number of
 * tokens; the server pairs layers by index and positions from the start.
 */
export function compareInputs(settings: Settings, a: Model | undefined, b: Model | undefined): { a: LensInput; b: LensInput } {
  const ia = lensInput({ ...settings, track: false, stats: false, attn: false }, a);
  const ib = lensInput({ ...settings, track: false, stats: false, attn: false, prompt: settings.promptB ?? settings.prompt }, b ?? a);
  return { a: ia, b: ib };
}

/** A run as LensStarted describes it, every cell still pending. */
export function startRun(input: LensInput, ev: Started, t0: number): Run {
  const layersDesc = ev.layers.map((layer, li) => ({ layer, li })).sort((a, b) => b.layer - a.layer);
  const rows: Row[] = [];
  for (const { layer, li } of layersDesc) {
    for (const point of ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] as const) {
      if (ev.points.includes(point)) rows.push({ layer, li, point, preds: null });
    }
  }
  // Each generated position arrives as one event per read point.
  const expected = rows.length + (ev.maxNewTokens ?? 0) * ev.points.length;
  return { input, tokens: [...ev.tokens], layers: ev.layers, points: ev.points, rows, received: 0, expected, result: null, t0, tFirst: null, tEnd: null };
}

/**
 * Stores one generated position's column (every requested layer at one read point). Returns
 * whether it added a column (the first event of a new position) — the view then grows the grid.
 */
export function applyPosition(run: Run, ev: PositionEvent, now: number): boolean {
  run.tFirst ??= now;
  const added = ev.position >= run.tokens.length;
  if (added) run.tokens[ev.position] = ev.token;
  for (const row of run.rows) {
    if (row.point !== ev.point) continue;
    const cell = ev.cells.find((c) => c.layer === row.layer);
    if (!cell) continue;
    row.preds ??= [];
    row.preds[ev.position] = cell.topk;
  }
  run.received++;
  return added;
}

/** Pins survive a new run only when it reads the same tokens (positions mean the same thing). */
export function sameTokens(a: Run | null, b: Run): boolean {
  return a != null && a.tokens.length === b.tokens.length && a.tokens.every((t, i) => t.id === b.tokens[i].id);
}

/** Stores one streamed layer; returns the index of the row it filled (-1 when it is not in the run). */
export function applyLayer(run: Run, ev: LayerEvent, now: number): number {
  const ri = run.rows.findIndex((x) => x.layer === ev.layer && x.point === ev.point);
  if (ri < 0) return -1;
  run.tFirst ??= now;
  run.rows[ri].preds = layerPreds(ev);
  run.received++;
  return ri;
}

/** A PACKED LayerResult as [position] → top-k predictions with their texts. */
export function layerPreds(ev: LayerEvent): Pred[][] {
  const { positions, k, topIndices, topProbs } = decodeLayer(ev.packed);
  const text = new Map(ev.packed.tokens.map((t) => [t.id, t.text]));
  return Array.from({ length: positions }, (_, p) =>
    Array.from({ length: k }, (_, j) => {
      const id = topIndices[p * k + j];
      return { id, text: text.get(id) ?? '', prob: topProbs[p * k + j] };
    }),
  );
}

type PackedReadIn = { trackedCounts?: PackedArray | null; trackedIds?: PackedArray | null; trackedProbs?: PackedArray | null; entropy?: PackedArray | null; klToFinal?: PackedArray | null; finalTop1Rank?: PackedArray | null };

/** [rows, cols] row-major → nested arrays. */
function rows2(a: ArrayLike<number>, cols: number): number[][] {
  return Array.from({ length: cols ? a.length / cols : 0 }, (_, r) => Array.from({ length: cols }, (_, c) => a[r * cols + c]));
}

function readView(p: PackedReadIn, layers: number, text: Map<number, string>): { tracked: TrackedView[] | null; stats: StatsView | null } {
  let tracked: TrackedView[] | null = null;
  if (p.trackedCounts && p.trackedIds && p.trackedProbs) {
    const t = decodeTracked(p.trackedCounts, p.trackedIds, p.trackedProbs);
    const n = t.tokenIds.length;
    tracked = Array.from({ length: t.offsets.length - 1 }, (_, position) => {
      const [from, to] = [t.offsets[position], t.offsets[position + 1]];
      const tokenIds = [...t.tokenIds.subarray(from, to)];
      return {
        position,
        tokenIds,
        tokens: tokenIds.map((id) => ({ text: text.get(id) ?? '' })),
        probs: Array.from({ length: layers }, (_, l) => [...t.probs.subarray(l * n + from, l * n + to)]),
      };
    });
  }
  let stats: StatsView | null = null;
  if (p.entropy && p.klToFinal && p.finalTop1Rank) {
    const positions = p.entropy.shape[1] ?? 0;
    stats = {
      entropy: rows2(decodeArray(p.entropy), positions),
      klToFinal: rows2(decodeArray(p.klToFinal), positions),
      finalTop1Rank: rows2(decodeArray(p.finalTop1Rank), positions),
    };
  }
  return { tracked, stats };
}

/** The PACKED completed result → trajectories and stats as the view reads them. */
export function resultView(r: Completed): ResultView {
  const text = new Map(r.packed.tokens.map((t) => [t.id, t.text]));
  const L = r.layers.length;
  return {
    id: r.id,
    layers: r.layers,
    generation: r.generation,
    timings: r.timings,
    ...readView(r.packed, L, text),
    attention: r.packed.attention ? readView(r.packed.attention, L, text) : null,
  };
}

export function applyCompleted(run: Run, result: Completed, now: number): void {
  run.result = resultView(result);
  run.tEnd = now;
}

/**
 * A stored result (Query.lensResult, the viewer's #result=<id> links) as a finished run: the rows
 * filled from its top-k as the stream would have filled them, trajectories and stats decoded.
 */
export function storedRun(s: Stored, now: number): Run {
  const attn = s.packed.attention != null;
  const points: LensPoint[] = attn ? ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] : ['BLOCK_OUTPUT'];
  const result = resultView(s);
  const input: LensInput = {
    model: s.model.id,
    prompt: s.prompt.text,
    topK: s.topK,
    layers: s.layers,
    trackAcrossLayers: result.tracked != null,
    stats: result.stats != null,
    points,
    lens: s.lens,
  };
  const started: Started = { __typename: 'LensStarted', resultId: s.id, tokens: s.tokens, layers: s.layers, topK: s.topK, points, maxNewTokens: 0 };
  const run = startRun(input, started, now);
  const text = new Map(s.packed.tokens.map((t) => [t.id, t.text]));
  const block = decodeLens({ topIndices: s.packed.topIndices, topProbs: s.packed.topProbs });
  const after = s.packed.attention ? decodeLens({ topIndices: s.packed.attention.topIndices, topProbs: s.packed.attention.topProbs }) : null;
  for (const row of run.rows) {
    const read = row.point === 'BLOCK_OUTPUT' ? block : after;
    if (!read) continue;
    const { positions, k } = read;
    row.preds = Array.from({ length: positions }, (_, p) =>
      Array.from({ length: k }, (_, j) => {
        const i = (row.li * positions + p) * k + j;
        return { id: read.topIndices[i], text: text.get(read.topIndices[i]) ?? '', prob: read.topProbs[i] };
      }),
    );
  }
  run.received = run.expected;
  run.result = result;
  return run;
}

/** The form settings a stored result was made with (the viewer shows them next to it). */
export function storedSettings(run: Run, numLayers: number | undefined): Partial<Settings> {
  const all = numLayers !== undefined && run.layers.length === numLayers && run.layers.every((l, i) => l === i);
  return {
    model: String(run.input.model),
    prompt: run.input.prompt,
    topK: String(run.input.topK),
    layers: all ? '' : run.layers.join(', '),
    track: run.input.trackAcrossLayers ?? false,
    stats: run.input.stats ?? false,
    attn: run.points.includes('ATTENTION_OUTPUT'),
    generate: '',
    lens: run.input.lens ?? 'LOGIT',
  };
}

/** The stats of the read a row shows: block output, or the read right after attention. */
export function rowStats(run: Run, row: Row) {
  return row.point === 'BLOCK_OUTPUT' ? run.result?.stats : run.result?.attention?.stats;
}

export function statValue(run: Run, row: Row, p: number, mode: ColorMode): number | null {
  const s = rowStats(run, row);
  if (!s) return null;
  if (mode === 'entropy') return s.entropy[row.li][p];
  if (mode === 'kl') return s.klToFinal[row.li][p];
  if (mode === 'rank') return s.finalTop1Rank[row.li][p];
  return null;
}

/** The mode the cells can actually show now: stat modes need stats, which come with the last event. */
export function effectiveMode(run: Run | null, wanted: ColorMode): ColorMode {
  if (wanted === 'prob' || !run?.result?.stats) return 'prob';
  return wanted;
}

export function colorScale(run: Run | null, wanted: ColorMode): Scale {
  const mode = effectiveMode(run, wanted);
  let max = 0;
  if (run && mode !== 'prob') {
    for (const row of run.rows) {
      for (let p = 0; p < run.tokens.length; p++) max = Math.max(max, statValue(run, row, p, mode) ?? 0);
    }
  }
  return makeScale(mode, max);
}

/** The value a cell is coloured by under `scale`; null when it has none (a stat not computed). */
export function cellValue(run: Run, row: Row, p: number, scale: Scale): number | null {
  const preds = row.preds?.[p];
  if (!preds) return null;
  return scale.mode === 'prob' ? preds[0].prob : statValue(run, row, p, scale.mode);
}

/** Adds the pin, or removes it when that (position, token) is pinned already; colours are reused. */
export function togglePin(pins: Pin[], position: number, tokenId: number, text: string): Pin[] {
  if (pins.some((p) => p.position === position && p.tokenId === tokenId)) {
    return pins.filter((p) => !(p.position === position && p.tokenId === tokenId));
  }
  const used = new Set(pins.map((p) => p.color));
  const color = PIN_COLORS.find((c) => !used.has(c)) ?? PIN_COLORS[pins.length % PIN_COLORS.length];
  return [...pins, { position, tokenId, text, color }];
}

export function isPinned(pins: Pin[], position: number, tokenId: number): boolean {
  return pins.some((pin) => pin.position === position && pin.tokenId === tokenId);
}

/**
 * A pin's probabilities by layer: exact from `tracked` once the run completes with trajectories;
 * until then (or without them) from the streamed top-k, with gaps where the token was not in it.
 */
export function pinSeries(run: Run, pin: Pin): Series {
  const points: Series['points'] = [];
  const exact = run.result?.tracked?.find((t) => t.position === pin.position);
  const exactAttn = run.result?.attention?.tracked?.find((t) => t.position === pin.position);
  const byKey = new Map(run.rows.map((row) => [`${row.point}/${row.layer}`, row]));
  for (const [li, layer] of run.layers.entries()) {
    for (const point of ['ATTENTION_OUTPUT', 'BLOCK_OUTPUT'] as const) {
      const row = byKey.get(`${point}/${layer}`);
      if (!row) continue;
      const tracked = point === 'BLOCK_OUTPUT' ? exact : exactAttn;
      let y: number | null = null;
      const j = tracked?.tokenIds.indexOf(pin.tokenId) ?? -1;
      if (tracked && j >= 0) y = tracked.probs[li][j];
      else y = row.preds?.[pin.position]?.find((q) => q.id === pin.tokenId)?.prob ?? null;
      points.push({ x: point === 'ATTENTION_OUTPUT' ? layer - 0.5 : layer, y, hollow: point === 'ATTENTION_OUTPUT' });
    }
  }
  return { color: pin.color, label: `${quoted(pin.text)} @${pin.position}`, points };
}

/** The timings panel: client-side times, then the server's, as label/value pairs. */
export function timingRows(run: Run, model: Model | undefined): Array<[string, string]> {
  const rows: Array<[string, string]> = [
    ['tokens', String(run.tokens.length)],
    ['layers', run.layers.length === model?.numLayers ? `all ${run.layers.length}` : run.layers.join(', ')],
  ];
  const t = run.result?.timings;
  if (run.tFirst != null) rows.push(['first layer (client)', ms(run.tFirst - run.t0)]);
  if (run.tEnd != null) rows.push(['complete (client)', ms(run.tEnd - run.t0)]);
  if (t) {
    rows.push(
      ['server total', ms(t.totalMs)],
      ['queue', ms(t.queueMs)],
      ['embed', ms(t.embedMs)],
      ['blocks', ms(t.blocksMs)],
      ['lens head', ms(t.headMs)],
      ['trajectories', ms(t.trackMs)],
      ['stats', ms(t.statsMs)],
      ['batch size', String(t.batchSize)],
    );
  }
  if (model && model.id === run.input.model) rows.push(['device', model.device ?? '?']);
  return rows;
}

/** The lens kinds a model offers, LOGIT first (older servers do not list them). */
export function lensKinds(model: Model | undefined): LensKind[] {
  const kinds = (model as { lenses?: Array<{ kind: LensKind }> } | undefined)?.lenses?.map((l) => l.kind);
  return kinds?.length ? kinds : ['LOGIT'];
}

/** The settings' lens kind if the model has it, else LOGIT. */
export function lensKindFor(settings: Settings, model: Model | undefined): LensKind {
  const want = (settings.lens ?? 'LOGIT') as LensKind;
  return lensKinds(model).includes(want) ? want : 'LOGIT';
}

/** What the page shows, for its headings: a lens run (live or stored) or a comparison. */
export type Shown =
  | { mode: 'lens'; lens: LensKind; generated: number; maxNewTokens: number }
  | { mode: 'compare'; lensA: LensKind; lensB: LensKind; generated: number; maxNewTokens: number };

export interface ViewTitle {
  /** Next to the brand in the top bar. */
  subtitle: string;
  /** Above the grid. */
  panel: string;
  /** The browser tab. */
  document: string;
}

export const LENS_NAMES: Record<LensKind, string> = { LOGIT: 'logit lens', TUNED: 'tuned lens', JACOBIAN: 'Jacobian lens' };

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The headings for what is shown: which lens, how many positions the model wrote, comparison mode. */
export function viewTitle(shown: Shown): ViewTitle {
  const written = shown.generated > 0 ? plural(shown.generated, 'generated token') : shown.maxNewTokens > 0 ? `up to ${plural(shown.maxNewTokens, 'generated token')}` : '';
  const gen = written ? ` · prompt + ${written}` : '';
  let subtitle: string;
  let panel: string;
  if (shown.mode === 'lens') {
    const name = LENS_NAMES[shown.lens];
    subtitle = `${name}${gen}`;
    panel = `${name[0].toUpperCase()}${name.slice(1)}: top-1 prediction per layer and position${written ? ` (prompt + ${written})` : ''}`;
  } else {
    const lenses = shown.lensA === shown.lensB ? LENS_NAMES[shown.lensA] : `a: ${LENS_NAMES[shown.lensA]}, b: ${LENS_NAMES[shown.lensB]}`;
    subtitle = `comparison · ${lenses}${gen}`;
    panel = `Comparison (${lenses}): JS divergence and top-1 of a and b per layer and aligned position`;
  }
  return { subtitle, panel, document: `lensgate · ${subtitle}` };
}

/** A lens run as the headings describe it (generated: the tokens written so far). */
export function shownRun(run: Run): Shown {
  return {
    mode: 'lens',
    lens: run.input.lens ?? 'LOGIT',
    generated: run.tokens.filter((t) => t.generated).length,
    maxNewTokens: run.input.generate?.maxNewTokens ?? 0,
  };
}

/** What a run of these settings would show (the headings before anything is shown). */
export function shownSettings(settings: Settings, a: Model | undefined, b: Model | undefined): Shown {
  const gen = Number((settings.generate ?? '').trim() || 0);
  const maxNewTokens = Number.isInteger(gen) && gen > 0 ? gen : 0;
  const lens = lensKindFor(settings, a);
  if (settings.compare) return { mode: 'compare', lensA: lens, lensB: lensKindFor(settings, b ?? a), generated: 0, maxNewTokens };
  return { mode: 'lens', lens, generated: 0, maxNewTokens };
}

