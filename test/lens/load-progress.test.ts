// openModel's progress hook: one event when the graphs are built, then one per block session, with
// the checkpoint bytes handed to ONNX Runtime so far; a hook that throws abandons the load.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { openModel } from '../../src/lens/index.js';
import { LensError, type LoadProgress } from '../../src/lens/types.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

/** Sum of every tensor's bytes, read straight from the safetensors header. */
function tensorBytes(file: string): number {
  const buf = readFileSync(file);
  const header = JSON.parse(buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('utf8')) as Record<string, { data_offsets?: [number, number] }>;
  return Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .reduce((a, [, t]) => a + t.data_offsets![1] - t.data_offsets![0], 0);
}

test('progress goes 0..N layers (the unembedding session first) with the bytes mapped rising to every byte the model uses', async () => {
  const recipe = { ...RECIPES['gpt2-tiny'], name: 'gpt2-progress-5', layers: 5 };
  const dir = makeCheckpoint(recipe);
  const events: LoadProgress[] = [];
  const model = await openModel(dir, { device: 'cpu', onProgress: (p) => void events.push(p) });
  try {
    expect(events.map((e) => e.layersBuilt)).toEqual([0, 0, 1, 2, 3, 4, 5]);
    expect(events.map((e) => e.sessionsBuilt)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(events.every((e) => e.layers === 5 && e.sessions === 6)).toBe(true);
    const total = tensorBytes(join(dir, 'model.safetensors'));
    expect(events.every((e) => e.bytesTotal === total)).toBe(true);
    const mapped = events.map((e) => e.bytesMapped);
    expect(mapped[0]).toBe(0);
    for (let i = 1; i < mapped.length; i++) expect(mapped[i]).toBeGreaterThan(mapped[i - 1]);
    expect(mapped[6]).toBe(total);
    // Blocks are the same shape, so each adds the same bytes.
    const steps = mapped.slice(2).map((m, i) => m - mapped[i + 1]);
    expect(new Set(steps).size).toBe(1);
    expect(events[0].info).toEqual(model.info);
  } finally {
    await model.close();
  }
});

test('a progress hook that throws abandons the load with its error', async () => {
  const dir = makeCheckpoint(RECIPES['gpt2-tiny']);
  const stop = new LensError('CANCELLED', 'stop at layer 2');
  const seen: number[] = [];
  await expect(
    openModel(dir, {
      device: 'cpu',
      onProgress: (p) => {
        seen.push(p.layersBuilt);
        if (p.layersBuilt === 2) throw stop;
      },
    }),
  ).rejects.toBe(stop);
  expect(seen).toEqual([0, 0, 1, 2]);
});
