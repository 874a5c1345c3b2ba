// The tiny checkpoints the GPU correctness check runs, taken from the fixture table itself: the first
// recipe of every family, plus the first of every storage dtype (F32, F16, BF16) the table holds;
// few, so staging stays small. test/lens/reference-families.test.ts checks that this covers both.
import { type FixtureRecipe, RECIPES, type RecipeName } from '../../test/helpers/fixtures.js';

export const GPU_FIXTURES: readonly RecipeName[] = (() => {
  const names = Object.keys(RECIPES) as RecipeName[];
  const picked = new Set<RecipeName>();
  const seen = new Set<string>();
  for (const pick of [(r: FixtureRecipe) => `family:${r.family}`, (r: FixtureRecipe) => `dtype:${r.dtype ?? 'F32'}`]) {
    for (const name of names) {
      const key = pick(RECIPES[name]);
      if (!seen.has(key)) {
        seen.add(key);
        picked.add(name);
      }
    }
  }
  return names.filter((n) => picked.has(n));
})();

/** Folder among the fixtures whose tokenizer.json is Llama 3's (the benchmark checkpoint borrows it). */
export const LLAMA3_TOKENIZER_FIXTURE = 'llama-gqa-tied';
