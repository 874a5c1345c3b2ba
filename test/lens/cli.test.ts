// The lens CLI as a user runs it: JSON shape, human table, errors on stderr with exit code 2.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', 'src/cli/lens.ts'];

async function lens(args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI, ...args], { env: { ...process.env, NODE_NO_WARNINGS: '1' } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('npm run lens', () => {
  const dir = makeCheckpoint(RECIPES['gpt2-tiny']);

  it('--json prints one document with the documented shape', async () => {
    const { code, stdout, stderr } = await lens(['--model', dir, '--prompt', 'The quick brown fox', '--top-k', '3', '--track', '--json', '--device', 'cpu']);
    expect(code).toBe(0);
    // Load progress goes to stderr (plain lines: not a terminal), so stdout stays one JSON document.
    expect(stderr).toMatch(/^lens: loading [\w-]+: 0\/3 layers, 0\.0 MiB \/ [\d.]+ MiB mapped$/m);
    expect(stderr).toMatch(/^lens: loading [\w-]+: 3\/3 layers, ([\d.]+) MiB \/ \1 MiB mapped$/m);
    const doc = JSON.parse(stdout);
    expect(Object.keys(doc)).toEqual(['model', 'lens', 'tokens', 'layers', 'topK', 'topIndices', 'topProbs', 'tracked']);
    expect(Object.keys(doc.model)).toEqual(['id', 'modelType', 'numLayers', 'hiddenSize', 'vocabSize']);
    expect(doc.model).toMatchObject({ modelType: 'gpt2', numLayers: 3, hiddenSize: 64, vocabSize: 50257 });
    expect(doc.tokens).toEqual([
      { position: 0, id: 464, text: 'The' },
      { position: 1, id: 2068, text: ' quick' },
      { position: 2, id: 7586, text: ' brown' },
      { position: 3, id: 21831, text: ' fox' },
    ]);
    expect(doc.layers).toEqual([0, 1, 2]);
    expect(doc.topK).toBe(3);
    expect(doc.topIndices).toHaveLength(3);
    expect(doc.topIndices[0]).toHaveLength(4);
    expect(doc.topIndices[0][0]).toHaveLength(3);
    expect(doc.tracked[0]).toMatchObject({ position: 0 });
    expect(Object.keys(doc.tracked[0])).toEqual(['position', 'tokenIds', 'probs']);
    expect(doc.tracked[0].probs).toHaveLength(3);
  });

  it('prints a layer × position table by default', async () => {
    const { code, stdout } = await lens(['--model', dir, '--prompt', 'The quick brown fox', '--layers', '2,0', '--device', 'cpu']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/top-1 per layer and position/);
    expect(stdout).toMatch(/^L2 /m);
    expect(stdout).toMatch(/^L0 /m);
    expect(stdout).not.toMatch(/^L1 /m);
  });

  it('--jacobian loads a lens file; one for another model is LENS_MISMATCH naming the field', async () => {
    const r = await lens(['--model', dir, '--prompt', 'x', '--jacobian', 'test/fixtures/lenses/jacobian-d16.pt', '--lens', 'jacobian', '--device', 'cpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/LENS_MISMATCH: .*d_model 16 does not match .* hidden size 64/);
  });

  it('reports bad input on stderr with exit code 2', async () => {
    const r = await lens(['--model', dir, '--prompt', 'x', '--top-k', '0', '--device', 'cpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/BAD_USER_INPUT: topK/);
    const missing = await lens(['--prompt', 'x']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--model is required/);
  });
});
