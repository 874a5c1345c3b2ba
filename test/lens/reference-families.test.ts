// Every recipe of the fixture table (test/helpers/fixtures.ts) against the independent float64
// reference (test/helpers/reference.ts): the block-output lens, the after-attention lens (for
// parallel-residual families: h + attention branch only) and the last layer against the model's
// own final distribution. Adding a recipe adds it here; a registered family without a recipe fails.
import { afterAll, describe, expect, it } from 'vitest';
import { registeredFamilies } from '../../src/architectures/registry.js';
import { type LensModel, openModel } from '../../src/lens/index.js';
import { GPU_FIXTURES } from '../../scripts/gpu/fixtures-list.js';
import { type FixtureRecipe, makeCheckpoint, RECIPES, type RecipeName } from '../helpers/fixtures.js';
import { loadReferenceModel, type RefModel, referenceLensOf } from '../helpers/reference.js';
import { expectMatchesReference, idsOf } from './helpers.js';

const CASES = Object.keys(RECIPES) as RecipeName[];
const TABLE: FixtureRecipe[] = Object.values(RECIPES);
const PROMPTS = ['The capital of France is Paris, and the capital of Italy is', 'Hello'];
const TOL = 1e-5;

/** Worst deviation per case, printed at the end with LENSGATE_REPORT=1 (docs quote these). */
const worst = new Map<string, number>();
afterAll(() => {
  if (process.env.LENSGATE_REPORT) console.log([...worst].map(([k, v]) => `${k}\t${v.toExponential(2)}`).join('\n'));
});

describe('the recipe table', () => {
  it('has a recipe for every registered family', () => {
    const covered = new Set<string>(TABLE.map((r) => r.family));
    expect(registeredFamilies().filter((f) => !covered.has(f))).toEqual([]);
  });

  it('the GPU check runs every family and every storage dtype of the table', () => {
    const gpu: FixtureRecipe[] = GPU_FIXTURES.map((n) => RECIPES[n]);
    expect(new Set(gpu.map((r) => r.family))).toEqual(new Set(TABLE.map((r) => r.family)));
    expect(new Set(gpu.map((r) => r.dtype ?? 'F32'))).toEqual(new Set(TABLE.map((r) => r.dtype ?? 'F32')));
  });
});

describe.each(CASES)('%s matches the float64 reference', (name) => {
  let model: LensModel;
  let refModel: RefModel;
  afterAll(() => model?.close());

  it.each(PROMPTS)('prompt %j: top-k, trajectories, after-attention lens and the final distribution', async (prompt) => {
    const dir = makeCheckpoint(RECIPES[name]);
    model ??= await openModel(dir, { device: 'cpu' });
    refModel ??= loadReferenceModel(dir);
    const r = await model.lens(prompt, { topK: 5, trackAcrossLayers: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] });
    const ref = referenceLensOf(refModel, idsOf(r));
    worst.set(name, Math.max(worst.get(name) ?? 0, expectMatchesReference(r, ref, model.info.numLayers, TOL)));
  });
});
