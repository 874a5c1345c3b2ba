// Checks the numpy decoder printed in docs/wire-format.md against a real gateway response:
// serves tiny-facts-gpt2, asks for one result as full-precision JSON and as PACKED, and runs the
// exact Python block from the doc with /usr/bin/python3 + numpy, on both selections (topIndices +
// topProbs, and topLocal + the trajectories). Exits non-zero unless the ids match and every
// probability is within the default bound |p′ − p| ≤ 1e-3 · max(p, 5e-3) (top-k read through the
// trajectories: 1.05e-3, for the engine's float32 rounding between its two passes). Not part of
// `npm test` (tests need no Python): run `npx tsx scripts/check-numpy-decoder.ts` after changing the format.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { print } from 'graphql';
import { gatewayApi } from '../resolvers/index.js';
import { LensPackedDocument, LensPackedTrackedDocument } from '../src/client/graphql.js';
import { openModel } from '../src/lens/index.js';
import { buildApp } from '../src/server/app.js';
import { ModelRegistry } from '../src/server/models.js';
import { MemoryResultStore } from '../src/server/result-store.js';

const doc = readFileSync(join(import.meta.dirname, '../docs/wire-format.md'), 'utf8');
const block = /\*\*Python \+ numpy\*\*[^]*?```python\n([^]*?)```/.exec(doc)?.[1];
if (!block) throw new Error('no Python block after "**Python + numpy**" in docs/wire-format.md');

const model = await openModel(join(import.meta.dirname, '../models/tiny-facts-gpt2'), { id: 'facts', device: 'cpu' });
const registry = new ModelRegistry();
registry.add(model);
registry.markReady();
const app = buildApp({ registry, api: gatewayApi({ registry, store: new MemoryResultStore() }), port: 0, host: '127.0.0.1', logging: false });
const { url } = await app.start();
const dir = mkdtempSync(join(tmpdir(), 'lensgate-numpy-'));
try {
  const input = { model: 'facts', prompt: 'The capital of France is Paris. The capital of Italy is', topK: 5, trackAcrossLayers: true };
  const post = async (query: string, variables: unknown) => {
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, variables }) });
    return res.text();
  };
  const full = await post('query($input: LensInput!) { lens(input: $input) { topIndices topProbs tracked { tokenIds probs } } }', { input });
  writeFileSync(join(dir, 'full.json'), full);
  writeFileSync(join(dir, 'packed.json'), await post(print(LensPackedDocument), { input }));
  writeFileSync(join(dir, 'tracked.json'), await post(print(LensPackedTrackedDocument), { input }));
  const indent = (text: string) => text.replace(/^(?=.)/gm, '    ');
  const harness = `
import json, sys
import numpy as np
exact = json.load(open(sys.argv[1] + "/full.json"))["data"]["lens"]
bound = lambda got, p, eps=1e-3: np.all(np.abs(got - p) <= eps * np.maximum(p, 5e-3) * (1 + 1e-12))
for name in ["packed", "tracked"]:
    response = json.load(open(sys.argv[1] + "/" + name + ".json"))
    assert ("topIndices" in response["data"]["lens"]["packed"]) == (name == "packed")
${indent(block)}
    assert np.array_equal(top_ids, np.array(exact["topIndices"])), "topIndices differ"
    assert bound(top_p, np.array(exact["topProbs"]), 1e-3 if name == "packed" else 1.05e-3), "topProbs outside the bound"
    for p, t in enumerate(exact["tracked"]):
        assert list(ids[p]) == t["tokenIds"], f"tracked ids differ at position {p}"
        assert bound(probs[p], np.array(t["probs"])), f"trajectories outside the bound at position {p}"
    worst = max(float(np.max(np.abs(probs[p] - np.array(t["probs"])) / np.maximum(np.array(t["probs"]), 5e-3))) for p, t in enumerate(exact["tracked"]))
    print(f"numpy decoder OK ({name}): {top_ids.shape} top-k, {sum(len(i) for i in ids)} tracked ids, worst error {worst:.2e} of max(p, 5e-3)")
`;
  writeFileSync(join(dir, 'check.py'), harness);
  process.stdout.write(execFileSync('/usr/bin/python3', [join(dir, 'check.py'), dir], { encoding: 'utf8' }));
} finally {
  rmSync(dir, { recursive: true, force: true });
  await app.stop();
  await registry.close();
}
