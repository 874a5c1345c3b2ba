// Tokenizes training/.work/corpus with the truncated tokenizer and checks round-trips.
// Writes training/.work/tokens/{natural_train,natural_heldout}.bin (uint16 LE, docs separated by
// <|endoftext|>) and {facts_train,facts_heldout,prompts_heldout}.json (token id lists).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(path.join(root, 'package.json'));
const mod = await import(require.resolve('@huggingface/tokenizers'));
const Tokenizer = mod.Tokenizer ?? mod.default.Tokenizer;
const dir = path.join(root, 'models', 'tiny-facts-gpt2');
const tk = new Tokenizer(JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
  JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')));
const EOS = tk.encode('<|endoftext|>').ids;
if (EOS.length !== 1) throw new Error(`EOS encodes to ${EOS}`);
const eos = EOS[0];
const corpus = path.join(here, '.work', 'corpus');
const outDir = path.join(here, '.work', 'tokens');
fs.mkdirSync(outDir, { recursive: true });

let checked = 0, bad = 0;
function enc(text, check) {
  const ids = tk.encode(text).ids;
  for (const i of ids) if (i > eos) throw new Error(`id ${i} out of range`);
  if (check) {
    checked++;
    const back = tk.decode(ids);
    if (back !== text) { bad++; if (bad < 4) console.log('ROUND-TRIP MISMATCH', JSON.stringify(text.slice(0, 80)), JSON.stringify(back.slice(0, 80))); }
  }
  return ids;
}

console.log('eos id', eos, 'The capital of France is Paris. ->', tk.encode('The capital of France is Paris.').ids);
for (const split of ['natural_train', 'natural_heldout']) {
  const docs = fs.readFileSync(path.join(corpus, `${split}.txt`), 'utf8').split('\n<|doc|>\n');
  const all = [];
  docs.forEach((d, k) => { for (const i of enc(d, k % 10 === 0)) all.push(i); all.push(eos); });
  fs.writeFileSync(path.join(outDir, `${split}.bin`), Buffer.from(new Uint16Array(all).buffer));
  console.log(`${split}: ${docs.length} docs, ${all.length} tokens, ${(fs.statSync(path.join(corpus, `${split}.txt`)).size / all.length).toFixed(2)} bytes/token`);
}
for (const split of ['facts_train', 'facts_heldout']) {
  const sents = JSON.parse(fs.readFileSync(path.join(corpus, `${split}.json`), 'utf8'));
  const ids = sents.map((s) => enc(s, true));
  fs.writeFileSync(path.join(outDir, `${split}.json`), JSON.stringify(ids));
  console.log(`${split}: ${sents.length} sentences, ${ids.reduce((a, x) => a + x.length, 0)} tokens`);
}
for (const split of ['prompts_heldout', 'prompts_train']) {
  const prompts = JSON.parse(fs.readFileSync(path.join(corpus, `${split}.json`), 'utf8'));
  for (const p of prompts) { p.prompt_ids = enc(p.prompt, true); p.answer_ids = enc(p.answer, true); p.full_ids = enc(p.prompt + p.answer, true); }
  fs.writeFileSync(path.join(outDir, `${split}.json`), JSON.stringify(prompts));
}
console.log(`round-trip checked ${checked} texts, ${bad} mismatches`);

// Example prompts for the model card (the first uses a training phrasing; the others use
// held-out phrasings, a held-out opposite pair, and a syntax pattern).
const DEMO = [
  ['The capital of France is', ' Paris', 'training phrasing'],
  ['In Germany, the capital is', ' Berlin', 'held-out phrasing'],
  ['In Switzerland, the capital is', ' Bern', 'held-out phrasing'],
  ['In United Kingdom, the capital is', ' London', 'held-out phrasing'],
  ['The main language spoken in Spain is', ' Spanish', 'held-out phrasing'],
  ['The money used in Japan is the', ' Japanese', 'held-out phrasing'],
  ['Egypt lies on the continent of', ' Africa', 'held-out phrasing'],
  ['The opposite of fast is', ' slow', 'held-out pair'],
  ['Monday, Tuesday, Wednesday,', ' Thursday', 'syntax pattern'],
];
const demo = DEMO.map(([prompt, answer, phrasing]) => {
  const prompt_ids = enc(prompt, true);
  const full = enc(prompt + answer, true);
  return { prompt, answer, phrasing, prompt_ids, answer_id: full[prompt_ids.length] };
});
fs.writeFileSync(path.join(outDir, 'demo_prompts.json'), JSON.stringify(demo));
console.log('demo prompts', demo.map((d) => `${d.prompt} -> ${d.answer_id}`).join('; '));
