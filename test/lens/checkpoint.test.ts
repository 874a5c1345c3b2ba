// Real checkpoint layouts: the HF cache's symlinked snapshots, .bin-only folders, weights referenced in place.
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/hf-dir.js';
import { LensError, openModel } from '../../src/lens/index.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

/** Lays a checkpoint out like ~/.cache/huggingface/hub: snapshots/<rev>/<file> → ../../blobs/<hash>. */
function hfCacheLayout(src: string): string {
  const root = mkdtempSync(join(tmpdir(), 'lensgate-hfcache-'));
  const blobs = join(root, 'blobs');
  const snap = join(root, 'snapshots', '0123abcd');
  mkdirSync(blobs, { recursive: true });
  mkdirSync(snap, { recursive: true });
  readdirSync(src).forEach((file, i) => {
    copyFileSync(join(src, file), join(blobs, `blob${i}`));
    symlinkSync(join('..', '..', 'blobs', `blob${i}`), join(snap, file));
  });
  return snap;
}

describe('checkpoint layouts', () => {
  it('opens an HF cache snapshot whose files are symlinks into blobs/ (sharded too) and gives the same lens', async () => {
    for (const name of ['gpt2-tiny', 'llama-gqa-tied-sharded'] as const) {
      const src = makeCheckpoint(RECIPES[name]);
      const direct = await openModel(src, { device: 'cpu' });
      const linked = await openModel(hfCacheLayout(src), { device: 'cpu' });
      try {
        const a = await direct.lens('The capital of France is', { topK: 3 });
        const b = await linked.lens('The capital of France is', { topK: 3 });
        expect(b.topIndices).toEqual(a.topIndices);
        expect(b.topProbs).toEqual(a.topProbs);
      } finally {
        await direct.close();
        await linked.close();
      }
    }
  });

  it('references weights in place: every tensor points into the safetensors file, nothing is converted', () => {
    const ckpt = openCheckpoint(makeCheckpoint(RECIPES['gpt2-bf16-sharded']));
    const files = new Set([...ckpt.tensors.values()].map((t) => t.file));
    expect(files.size).toBe(2);
    for (const t of ckpt.tensors.values()) {
      expect(t.dtype).toBe('BF16');
      expect(t.fileOffset).toBeGreaterThan(8);
    }
  });

  it('says so when a folder only has PyTorch .bin weights', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lensgate-bin-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2' }));
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    expect(() => openCheckpoint(dir)).toThrowError(LensError);
    expect(() => openCheckpoint(dir)).toThrowError(/\.bin checkpoints are not read/);
  });
});

describe('tied embeddings with a stored lm_head', () => {
  it('ignores lm_head.weight when tie_word_embeddings is true, as transformers does', async () => {
    const { readSafetensorsFile } = await import('../helpers/reference.js');
    const { writeSafetensors } = await import('../helpers/safetensors-writer.js');
    const { cpSync } = await import('node:fs');
    const src = makeCheckpoint(RECIPES['gpt2-tiny']);
    const dir = mkdtempSync(join(tmpdir(), 'lensgate-tied-lmhead-'));
    cpSync(src, dir, { recursive: true });
    const tensors: Record<string, { shape: number[]; data: Float64Array }> = {};
    for (const [name, t] of readSafetensorsFile(join(src, 'model.safetensors'))) tensors[name] = { shape: t.shape, data: t.data };
    const wte = tensors['transformer.wte.weight'];
    tensors['lm_head.weight'] = { shape: wte.shape, data: wte.data.map((x) => -x) };
    writeSafetensors(join(dir, 'model.safetensors'), tensors);
    const a = await openModel(src, { device: 'cpu' });
    const b = await openModel(dir, { device: 'cpu' });
    try {
      const ra = await a.lens('The capital of France is', { topK: 3 });
      const rb = await b.lens('The capital of France is', { topK: 3 });
      expect(rb.topIndices).toEqual(ra.topIndices);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
