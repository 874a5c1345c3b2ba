// The viewer's state logic in Node, no browser: how settings become a lens input, how streamed
// events fill a run, pins and their trajectories, colour scales and the URL fragment.

import { describe, expect, test } from 'vitest';
import {
  applyCompleted,
  applyLayer,
  colorScale,
  effectiveMode,
  lensInput,
  parseLayers,
  pinSeries,
  sameTokens,
  shownRun,
  shownSettings,
  startRun,
  viewTitle,
  timingRows,
  togglePin,
  PIN_COLORS,
  type Completed,
  type LayerEvent,
  lensKinds,
  type Model,
  type Settings,
  type Started,
} from '../../src/viewer/state.js';
import { settingsFromHash, settingsToHash, hashFlag } from '../../src/viewer/url-state.js';
import { packF32, packLayer, packP16, packU32, probCode, trackedMatrix } from '../../src/lens/packed.js';

const model = { id: 'm', numLayers: 4, device: 'cpu' } as Model;
const settings: Settings = { model: 'm', prompt: 'a b', topK: '3', layers: '', track: true, stats: false, attn: false, color: 'prob', compare: false };
const tokens = [
  { position: 0, id: 10, text: 'a' },
  { position: 1, id: 11, text: ' b' },
];

function started(layers: number[], points: Started['points']): Started {
  return { __typename: 'LensStarted', resultId: 'r1', tokens, layers, points } as unknown as Started;
}

function layer(l: number, point: LayerEvent['point'], top: Array<[number, number]>): LayerEvent {
  return {
    __typename: 'LayerResult',
    layer: l,
    point,
    // What the server sends: the PACKED arrays and the text of each id once.
    packed: {
      ...packLayer({ topIndices: top.map(([id]) => [id]), topProbs: top.map(([, prob]) => [prob]) }),
      tokens: top.map(([id]) => ({ id, text: `t${id}` })),
    },
  } as unknown as LayerEvent;
}

/** A LensCompleted result as the server sends it to the viewer: trajectories and stats PACKED. */
function completed(r: {
  layers: number[];
  tracked?: Array<{ position: number; tokenIds: number[]; probs: number[][] }>;
  stats?: { entropy: number[][]; klToFinal: number[][]; finalTop1Rank: number[][] };
  timings?: Record<string, number>;
}): Completed {
  const L = r.layers.length;
  const m = r.tracked ? trackedMatrix(r.tracked, L) : null;
  const cells = (x: number[][]) => [x.length, x[0]?.length ?? 0];
  return {
    id: 'r1',
    layers: r.layers,
    generation: null,
    timings: r.timings ?? null,
    packed: {
      trackedCounts: m ? packU32(m.counts, [m.counts.length]) : null,
      trackedIds: m ? packU32(m.ids, [m.ids.length]) : null,
      trackedProbs: m ? packP16(m.probs, [L, m.ids.length], probCode()) : null,
      entropy: r.stats ? packF32(r.stats.entropy.flat(), cells(r.stats.entropy)) : null,
      klToFinal: r.stats ? packF32(r.stats.klToFinal.flat(), cells(r.stats.klToFinal)) : null,
      finalTop1Rank: r.stats ? packU32(r.stats.finalTop1Rank.flat(), cells(r.stats.finalTop1Rank)) : null,
      tokens: (m?.ids ?? []).map((id) => ({ id, text: `t${id}` })),
      attention: null,
    },
  } as unknown as Completed;
}

describe('settings → lens input', () => {
  test('layer lists: ranges, negatives from the end, "all"', () => {
    expect(parseLayers('0-2, -1', 12)).toEqual([0, 1, 2, 11]);
    expect(parseLayers('3..1 5:5', 12)).toEqual([1, 2, 3, 5]);
    expect(parseLayers(' all ', 12)).toBeNull();
    expect(parseLayers('', 12)).toBeNull();
    expect(() => parseLayers('1-x', 12)).toThrow(/cannot read "1-x"/);
  });

  test('the form becomes the subscription input; bad top-k and no model are coded errors', () => {
    expect(lensInput({ ...settings, layers: '-1', attn: true }, model)).toEqual({
      model: 'm',
      prompt: 'a b',
      lens: 'LOGIT',
      topK: 3,
      layers: [3],
      trackAcrossLayers: true,
      stats: false,
      points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'],
    });
    // A lens kind the model serves is sent; one it lacks falls back to the logit lens.
    const tuned = { ...model, lenses: [{ kind: 'LOGIT', layers: [0, 1, 2, 3] }, { kind: 'TUNED', layers: [0, 1, 2, 3] }] } as Model;
    expect(lensInput({ ...settings, lens: 'TUNED' }, tuned).lens).toBe('TUNED');
    expect(lensInput({ ...settings, lens: 'JACOBIAN' }, tuned).lens).toBe('LOGIT');
    expect(lensKinds(tuned)).toEqual(['LOGIT', 'TUNED']);
    expect(() => lensInput({ ...settings, topK: '2.5' }, model)).toThrow(expect.objectContaining({ code: 'BAD_USER_INPUT' }));
    expect(() => lensInput(settings, undefined)).toThrow(expect.objectContaining({ code: 'MODEL_NOT_FOUND' }));
  });
});

describe('a run', () => {
  test('rows: last layer on top, the attention read below its block output', () => {
    const run = startRun(lensInput(settings, model), started([0, 2], ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT']), 0);
    expect(run.rows.map((r) => `${r.layer}/${r.point}/${r.li}`)).toEqual([
      '2/BLOCK_OUTPUT/1',
      '2/ATTENTION_OUTPUT/1',
      '0/BLOCK_OUTPUT/0',
      '0/ATTENTION_OUTPUT/0',
    ]);
    expect(run.expected).toBe(4);
  });

  test('streamed layers fill their row; a layer outside the run is ignored', () => {
    const run = startRun(lensInput(settings, model), started([0, 2], ['BLOCK_OUTPUT']), 100);
    expect(applyLayer(run, layer(0, 'BLOCK_OUTPUT', [[5, 0.5], [6, 0.25]]), 130)).toBe(1);
    expect(run.rows[1].preds?.[1]).toEqual([{ id: 6, text: 't6', prob: expect.closeTo(0.25, 3) }]);
    expect(run.tFirst).toBe(130);
    expect(applyLayer(run, layer(1, 'BLOCK_OUTPUT', [[5, 0.5], [6, 0.25]]), 140)).toBe(-1);
    expect(run.received).toBe(1);
  });

  test('pins: toggling adds and removes, colours are reused; same tokens keep them', () => {
    let pins = togglePin([], 1, 6, 't6');
    pins = togglePin(pins, 0, 5, 't5');
    expect(pins.map((p) => p.color)).toEqual([PIN_COLORS[0], PIN_COLORS[1]]);
    pins = togglePin(pins, 1, 6, 't6');
    expect(pins.map((p) => p.tokenId)).toEqual([5]);
    expect(togglePin(pins, 1, 7, 't7')[1].color).toBe(PIN_COLORS[0]);
    const a = startRun(lensInput(settings, model), started([0], ['BLOCK_OUTPUT']), 0);
    const b = startRun(lensInput(settings, model), started([1], ['BLOCK_OUTPUT']), 0);
    expect(sameTokens(a, b)).toBe(true);
    expect(sameTokens(null, b)).toBe(false);
  });

  test('a trajectory comes from the streamed top-k until the run completes, then from `tracked`', () => {
    const run = startRun(lensInput(settings, model), started([0, 2], ['BLOCK_OUTPUT']), 0);
    applyLayer(run, layer(0, 'BLOCK_OUTPUT', [[5, 0.5], [6, 0.25]]), 1);
    const pin = togglePin([], 1, 6, 't6')[0];
    expect(pinSeries(run, pin).points).toEqual([
      { x: 0, y: expect.closeTo(0.25, 3), hollow: false },
      { x: 2, y: null, hollow: false },
    ]);
    const result = completed({
      layers: [0, 2],
      tracked: [
        { position: 0, tokenIds: [], probs: [[], []] },
        { position: 1, tokenIds: [6, 9], probs: [[0.3, 0.1], [0.05, 0.9]] },
      ],
      timings: { totalMs: 12, queueMs: 0, embedMs: 1, blocksMs: 5, headMs: 4, trackMs: 1, statsMs: 0, batchSize: 1 },
    });
    applyCompleted(run, result, 50);
    expect(run.result?.tracked?.[1].tokens.map((t) => t.text)).toEqual(['t6', 't9']);
    expect(pinSeries(run, pin).points.map((p) => p.y)).toEqual([expect.closeTo(0.3, 3), expect.closeTo(0.05, 4)]);
    expect(timingRows(run, model)).toContainEqual(['complete (client)', '50.0 ms']);
    expect(timingRows(run, model)).toContainEqual(['server total', '12.0 ms']);
  });

  test('stat colour modes wait for stats; the scale spans the largest value', () => {
    const run = startRun(lensInput(settings, model), started([0, 1], ['BLOCK_OUTPUT']), 0);
    applyLayer(run, layer(0, 'BLOCK_OUTPUT', [[5, 0.5], [6, 0.25]]), 1);
    expect(effectiveMode(run, 'entropy')).toBe('prob');
    applyCompleted(run, completed({ layers: [0, 1], stats: { entropy: [[0.5, 1.5], [2.5, 0.1]], klToFinal: [[0, 0], [0, 0]], finalTop1Rank: [[0, 3], [1, 0]] } }), 2);
    expect(run.result?.stats?.finalTop1Rank).toEqual([[0, 3], [1, 0]]);
    expect(effectiveMode(run, 'entropy')).toBe('entropy');
    expect(colorScale(run, 'entropy').ticks[0]).toBe('2.5');
    expect(colorScale(run, 'prob').mode).toBe('prob');
  });
});

describe('headings', () => {
  const lensed = { ...model, lenses: [{ kind: 'LOGIT' }, { kind: 'TUNED' }, { kind: 'JACOBIAN' }] } as unknown as Model;
  test('name the lens kind, the written positions and comparison mode', () => {
    expect(viewTitle({ mode: 'lens', lens: 'TUNED', generated: 0, maxNewTokens: 0 })).toEqual({
      subtitle: 'tuned lens',
      panel: 'Tuned lens: top-1 prediction per layer and position',
      document: 'lensgate · tuned lens',
    });
    expect(viewTitle({ mode: 'lens', lens: 'JACOBIAN', generated: 0, maxNewTokens: 4 }).subtitle).toBe('Jacobian lens · prompt + up to 4 generated tokens');
    expect(viewTitle({ mode: 'lens', lens: 'LOGIT', generated: 1, maxNewTokens: 4 }).panel).toBe(
      'Logit lens: top-1 prediction per layer and position (prompt + 1 generated token)',
    );
    expect(viewTitle({ mode: 'compare', lensA: 'TUNED', lensB: 'TUNED', generated: 2, maxNewTokens: 2 }).subtitle).toBe('comparison · tuned lens · prompt + 2 generated tokens');
    expect(viewTitle({ mode: 'compare', lensA: 'TUNED', lensB: 'LOGIT', generated: 0, maxNewTokens: 0 }).subtitle).toBe('comparison · a: tuned lens, b: logit lens');
  });
  test('a run counts the tokens written so far; the form says what Run would show', () => {
    const input = lensInput({ ...settings, lens: 'TUNED', generate: '3' }, lensed);
    const run = startRun(input, { ...started([0, 1, 2, 3], ['BLOCK_OUTPUT']), maxNewTokens: 3 }, 0);
    expect(shownRun(run)).toEqual({ mode: 'lens', lens: 'TUNED', generated: 0, maxNewTokens: 3 });
    run.tokens.push({ position: run.tokens.length, id: 7, text: 'x', generated: true } as (typeof run.tokens)[number]);
    expect(shownRun(run).generated).toBe(1);
    // A kind the model lacks runs as LOGIT, so b of a comparison on a plain model reads LOGIT.
    expect(shownSettings({ ...settings, lens: 'TUNED', compare: true }, lensed, model)).toEqual({ mode: 'compare', lensA: 'TUNED', lensB: 'LOGIT', generated: 0, maxNewTokens: 0 });
    expect(shownSettings({ ...settings, lens: 'JACOBIAN' }, model, undefined)).toMatchObject({ mode: 'lens', lens: 'LOGIT' });
  });
});

describe('URL fragment', () => {
  test('round trip; unknown colours and missing keys keep the current settings', () => {
    const s: Settings = { ...settings, prompt: 'The capital of France is', layers: '0-3', stats: true, color: 'kl' };
    expect(settingsFromHash(settingsToHash(s), settings)).toEqual(s);
    const generating: Settings = { ...s, generate: '4', compare: true, modelB: 'm2', promptB: 'x y' };
    expect(settingsFromHash(settingsToHash(generating), settings)).toEqual(generating);
    expect(settingsFromHash(settingsToHash({ ...s, lens: 'JACOBIAN' }), settings)).toEqual({ ...s, lens: 'JACOBIAN' });
    const generatingTuned: Settings = { ...generating, lens: 'TUNED' };
    expect(settingsFromHash(settingsToHash(generatingTuned), settings)).toEqual(generatingTuned);
    expect(settingsFromHash('#color=plaid&k=7', settings)).toEqual({ ...settings, topK: '7' });
    expect(hashFlag('#autorun=0&k=3', 'autorun')).toBe('0');
  });
});
