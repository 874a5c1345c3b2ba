// Real tiny checkpoints for the gateway tests, opened with the real lens core.

import { openModel } from '../../src/lens/index.js';
import type { LensModel } from '../../src/lens/types.js';
import { makeCheckpoint, RECIPES, type FixtureRecipe } from '../helpers/fixtures.js';

/** gpt2-tiny: 3 layers, d=64, the real GPT-2 tokenizer (vocab 50257). */
export function openTinyGpt2(id = 'gpt2-tiny'): Promise<LensModel> {
  return openModel(makeCheckpoint(RECIPES['gpt2-tiny']), { id, device: 'cpu' });
}

/** Same shape with 24 layers, so a request takes long enough (~1 s) to cancel halfway. */
export const DEEP_GPT2: FixtureRecipe = { ...RECIPES['gpt2-tiny'], name: 'gpt2-deep24', seed: 17, layers: 24 };

export function openDeepGpt2(id = 'gpt2-deep'): Promise<LensModel> {
  return openModel(makeCheckpoint(DEEP_GPT2), { id, device: 'cpu' });
}
