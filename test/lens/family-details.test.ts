// Family details the per-recipe reference suite (reference-families.test.ts) cannot show: LongRoPE
// past the original context in a mixed batch, and the shape of the sparse MoE graph.
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { detectArchitecture } from '../../src/architectures/registry.js';
import { openCheckpoint } from '../../src/checkpoint/hf-dir.js';
import { buildBlockGraph } from '../../src/graph/block.js';
import { WeightBinder } from '../../src/graph/weights.js';
import { type LensModel, type LensResult, openModel } from '../../src/lens/index.js';
import { makeCheckpoint, recipe } from '../helpers/fixtures.js';
import { loadReferenceModel, referenceLensOf } from '../helpers/reference.js';
import { deviation, idsOf } from './helpers.js';

const PROMPTS = ['The capital of France is Paris, and the capital of Italy is', 'Hello'];
const TOL = 1e-5;

// LongRoPE switches to long_factor once a prompt is longer than original_max_position_embeddings
// (32 in the recipe): a 40-token prompt must match the reference's long-factor forward, and must not
// drag a short prompt batched with it onto the long factors (HF would, for the padded batch).
describe('phi3-longrope past the original context', () => {
  const LONG = Array(10).fill('the quick brown fox').join(' '); // 40 tokens
  let model: LensModel;
  afterAll(() => model?.close());

  it('long and short prompts in one batch each match their own reference', async () => {
    const dir = makeCheckpoint(recipe('phi3-longrope'));
    model = await openModel(dir, { device: 'cpu' });
    expect(model.tokenize(LONG).length).toBeGreaterThan(32);
    const opts = { topK: 5, trackAcrossLayers: true };
    const [long, short] = (await model.lensBatch([{ prompt: LONG, options: opts }, { prompt: PROMPTS[0], options: opts }])) as LensResult[];
    const refModel = loadReferenceModel(dir);
    for (const r of [long, short]) {
      const ref = referenceLensOf(refModel, idsOf(r));
      const d = deviation(r, ref.logProbs);
      expect(d.topKMismatches).toEqual([]);
      expect(d.maxProbError).toBeLessThanOrEqual(TOL);
    }
  });
});

// The MoE block is sparse: every expert's MLP reads only the rows routed to it (a Gather by the
// NonZero of its routing mask) and scatter-adds its output back; no expert sees the whole batch.
describe('mixtral MoE graph', () => {
  it('gathers each expert its rows and scatter-adds the result', () => {
    const ckpt = openCheckpoint(makeCheckpoint(recipe('mixtral-tiny')));
    const plan = detectArchitecture(ckpt.config).plan(ckpt.config);
    const graph = onnxProto.onnx.ModelProto.decode(buildBlockGraph(plan.blocks[0], 0, plan.hiddenSize, new WeightBinder(ckpt))).graph!;
    const nodes = graph.node!;
    const count = (op: string) => nodes.filter((n) => n.opType === op).length;
    const E = 4;
    expect(count('NonZero')).toBe(E);
    expect(count('ScatterND')).toBe(E);
    expect(count('TopK')).toBe(1);
    for (let e = 0; e < E; e++) {
      // The expert's gate projection consumes the gathered rows, not the flattened input.
      const gate = nodes.find((n) => n.name!.includes(`/experts.${e}/gate/`) && n.opType !== 'Cast')!;
      const producer = nodes.find((n) => n.output!.includes(gate.input![0]))!;
      expect(producer.opType).toBe('Gather');
    }
  });
});
