// Provider selection without a GPU: auto falls back to CPU with the reason, cuda fails loudly.
// The real onnxruntime-node folder is never modified (other suites run concurrently and expect
// auto → CPU); the "library present" cases point the presence check at a temp folder instead.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LensError, openModel } from '../../src/lens/index.js';
import { CUDA_PROVIDER_LIB, cudaProviderMissing, ortBinaryDir, sessionFactory } from '../../src/runtime/sessions.js';
import { makeCheckpoint, RECIPES } from '../helpers/fixtures.js';

const empty = mkdtempSync(join(tmpdir(), 'lensgate-noprovider-'));
const standIn = mkdtempSync(join(tmpdir(), 'lensgate-standin-'));
writeFileSync(join(standIn, CUDA_PROVIDER_LIB), 'not an ELF file');
afterAll(() => {
  rmSync(empty, { recursive: true, force: true });
  rmSync(standIn, { recursive: true, force: true });
});

// On a machine where `npm run setup:cuda` was run, CUDA may genuinely work: these cases then do not apply.
const realProvider = cudaProviderMissing() === null;

describe('cudaProviderMissing', () => {
  it('names the missing library and the fix', () => {
    const why = cudaProviderMissing(empty);
    expect(why).toContain(join(empty, CUDA_PROVIDER_LIB));
    expect(why).toContain('npm run setup:cuda');
  });
  it('is null once the library file is in place', () => {
    expect(cudaProviderMissing(standIn)).toBeNull();
  });
  it('looks next to onnxruntime-node’s own binary by default', () => {
    expect(ortBinaryDir()).toMatch(/onnxruntime-node[/\\]bin[/\\]napi-v6[/\\]/);
  });
});

describe('sessionFactory', () => {
  const root = makeCheckpoint(RECIPES['gpt2-tiny']);

  it('auto without the provider library → CPU, with the reason', async () => {
    const f = await sessionFactory(root, 'auto', { providerDir: empty });
    expect(f.provider).toBe('cpu');
    expect(f.note).toMatch(/^using CPU: CUDA provider library not installed/);
  });

  it('cuda without the provider library → DEVICE_UNAVAILABLE with the reason', async () => {
    const err = await sessionFactory(root, 'cuda', { providerDir: empty }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LensError);
    expect(err).toMatchObject({ code: 'DEVICE_UNAVAILABLE' });
    expect((err as Error).message).toMatch(/CUDA provider library not installed.*setup:cuda/);
  });

  it('cpu never looks for CUDA', async () => {
    const f = await sessionFactory(root, 'cpu', { providerDir: empty });
    expect(f).toMatchObject({ provider: 'cpu', note: null });
  });

  // The presence check passes, so ORT itself is asked for CUDA and throws (it does not fall back):
  // the probe session's error is what auto reports and cuda raises.
  it.skipIf(realProvider)('auto when ORT cannot load CUDA → CPU with ORT’s reason', async () => {
    const f = await sessionFactory(root, 'auto', { providerDir: standIn });
    expect(f.provider).toBe('cpu');
    expect(f.note).toMatch(/^CUDA unavailable, using CPU: \S/);
    const s = await f.create(new Uint8Array(0)).catch((e: unknown) => e);
    expect(s).toMatchObject({ code: 'CHECKPOINT_INVALID' });
  });

  it.skipIf(realProvider)('cuda when ORT cannot load CUDA → DEVICE_UNAVAILABLE with ORT’s reason', async () => {
    const err = await sessionFactory(root, 'cuda', { providerDir: standIn }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DEVICE_UNAVAILABLE' });
    expect((err as Error).message).toMatch(/^CUDA execution provider unavailable: \S/);
  });
});

describe.skipIf(realProvider)('openModel on a machine without the CUDA provider', () => {
  const dir = makeCheckpoint(RECIPES['gpt2-f16']);

  it('auto → CPU, float32 compute even for an F16 checkpoint, reason in deviceNote', async () => {
    const m = await openModel(dir);
    try {
      expect(m.info).toMatchObject({ device: 'cpu', dtype: 'F16', computeType: 'float32' });
      expect(m.info.deviceNote).toMatch(/CUDA provider library not installed/);
    } finally {
      await m.close();
    }
  });

  it('cuda → DEVICE_UNAVAILABLE', async () => {
    await expect(openModel(dir, { device: 'cuda' })).rejects.toMatchObject({ code: 'DEVICE_UNAVAILABLE' });
  });
});

describe('per-model device on the server command line', () => {
  it('--model id=dir@device[,dtype] reaches openModel; the server-wide --device is the default', async () => {
    const { parseModelSpec } = await import('../../src/cli/serve.js');
    const { ModelRegistry } = await import('../../src/server/models.js');
    expect(parseModelSpec('llama=/m/Llama-3.1-8B@cuda,float16')).toEqual({ id: 'llama', dir: '/m/Llama-3.1-8B', device: 'cuda', dtype: 'float16' });
    expect(parseModelSpec('g=/m/gpt2@cpu')).toEqual({ id: 'g', dir: '/m/gpt2', device: 'cpu' });
    expect(parseModelSpec('x=/m/user@host/dir')).toEqual({ id: 'x', dir: '/m/user@host/dir' });

    const seen: unknown[] = [];
    const registry = new ModelRegistry();
    const fake = (id: string) => ({ info: { id }, close: async () => {} }) as never;
    await registry.load(
      [parseModelSpec('a=/m/a@cuda,float16'), parseModelSpec('b=/m/b')],
      async (_dir, opts) => (seen.push(opts), fake(opts.id!)),
      'cpu',
    );
    expect(seen).toEqual([
      { id: 'a', modelType: undefined, device: 'cuda', dtype: 'float16', onProgress: expect.any(Function) },
      { id: 'b', modelType: undefined, device: 'cpu', dtype: undefined, onProgress: expect.any(Function) },
    ]);
    await registry.close();
  });
});
