// npx tsx scripts/lens-outputs.ts --root DIR --checkpoint DIR --out FILE.json
// The lens results of a fixed set of requests, computed by the src/ of the checkout at --root (this
// one by default), written as JSON. Two checkouts run on the same checkpoint give two files that
// scripts/lens-outputs.ts --compare A.json B.json compares cell by cell: how a change (a refactor
// that should change nothing) moved the numbers. Used for the before/after run in
// docs/engineering-notes.md ("Structure pass: the same results before and after").

import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    root: { type: 'string', default: resolve(import.meta.dirname, '..') },
    checkpoint: { type: 'string' },
    out: { type: 'string' },
    compare: { type: 'string', multiple: true },
  },
});

const PROMPT =
  'The quick brown fox jumps over the lazy dog while the capital of France is Paris and the capital of Italy is';
const REQUESTS: Array<Record<string, unknown>> = [
  { topK: 5 },
  { topK: 5, trackAcrossLayers: true },
  { topK: 5, stats: true, points: ['BLOCK_OUTPUT', 'ATTENTION_OUTPUT'] },
  { topK: 10, layers: [0, 5, 11], trackAcrossLayers: true, stats: true },
];

type Out = Array<{ options: Record<string, unknown>; result: Record<string, unknown> }>;

async function run(): Promise<void> {
  if (!values.checkpoint || !values.out) throw new Error('--checkpoint DIR and --out FILE are required');
  const lens = (await import(pathToFileURL(resolve(values.root, 'src/lens/index.ts')).href)) as typeof import('../src/lens/index.js');
  const model = await lens.openModel(values.checkpoint, { device: 'cpu' });
  const out: Out = [];
  for (const options of REQUESTS) {
    const r = await model.lens(PROMPT, options);
    out.push({ options, result: { tokens: r.tokens.map((t) => t.id), layers: r.layers, topIndices: r.topIndices, topProbs: r.topProbs, tracked: r.tracked, stats: r.stats, attention: r.attention } });
  }
  await model.close();
  writeFileSync(values.out, JSON.stringify(out));
  console.log(`${values.out}: ${out.length} requests`);
}

/** Walks two JSON values side by side: counts differing integers (ids, ranks) and the largest |Δ| of other numbers. */
function compare(a: unknown, b: unknown, acc = { ints: 0, intsDiffer: 0, floats: 0, maxAbs: 0, shape: 0 }) {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Number.isInteger(a) && Number.isInteger(b) && Math.abs(a) >= 1) {
      acc.ints++;
      if (a !== b) acc.intsDiffer++;
    } else {
      acc.floats++;
      acc.maxAbs = Math.max(acc.maxAbs, Math.abs(a - b));
    }
  } else if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((x, i) => compare(x, b[i], acc));
  } else if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const k of keys) compare((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], acc);
  } else if (a !== b) acc.shape++;
  return acc;
}

if (values.compare) {
  const [a, b] = values.compare.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Out);
  console.log('| request | identical | ids/ranks differing | numbers | max abs diff |');
  console.log('|---|---|---|---|---|');
  a.forEach((x, i) => {
    const c = compare(x.result, b[i].result);
    const same = JSON.stringify(x.result) === JSON.stringify(b[i].result);
    console.log(`| ${JSON.stringify(x.options)} | ${same ? 'yes' : 'no'} | ${c.intsDiffer} of ${c.ints}${c.shape ? `, ${c.shape} shape differences` : ''} | ${c.floats} | ${c.maxAbs.toExponential(2)} |`);
  });
} else {
  await run();
}
