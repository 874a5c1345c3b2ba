// The parts of `npm run setup:cuda` that need neither the 230 MB download nor a GPU.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CUDA_LIBS,
  findCudaLibs,
  ldLibraryPathAdditions,
  ORT_VERSION,
  PROVIDER_LIBS,
  versionProblems,
} from '../../scripts/setup-cuda.js';

const root = mkdtempSync(join(tmpdir(), 'lensgate-cudalibs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const put = (dir: string, ...files: string[]) => {
  mkdirSync(join(root, dir), { recursive: true });
  for (const f of files) writeFileSync(join(root, dir, f), f.startsWith('libonnxruntime_providers_cuda') ? `x ${ORT_VERSION} x` : '');
  return join(root, dir);
};

describe('findCudaLibs', () => {
  const ld = put('ld', 'libcudart.so.13');
  const toolkit = put('cuda-13.0/lib64', 'libcudart.so.13', 'libcurand.so.10');
  const site = join(root, 'site-packages');
  const cublas = put('site-packages/nvidia/cublas/lib', 'libcublas.so.13', 'libcublasLt.so.13');
  put('site-packages/nvidia/not-a-lib-dir');

  it('searches LD_LIBRARY_PATH, ldconfig, CUDA folders and pip’s nvidia/*/lib, in that order', () => {
    const found = findCudaLibs({
      ldLibraryPath: `/nonexistent:${ld}`,
      ldconfig: '\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1\n\tlibcurand.so.10 (libc6) => /i386/libcurand.so.10\n',
      dirs: [toolkit],
      sitePackages: [site, join(root, 'nowhere')],
    });
    const by = Object.fromEntries(found.map((f) => [f.name, f]));
    expect(by['libcudart.so.13']).toMatchObject({ dir: ld, via: 'LD_LIBRARY_PATH' });
    expect(by['libcuda.so.1']).toMatchObject({ dir: '/usr/lib/x86_64-linux-gnu', via: 'ldconfig' });
    expect(by['libcurand.so.10']).toMatchObject({ dir: '/i386', via: 'ldconfig' });
    expect(by['libcublas.so.13']).toMatchObject({ dir: cublas, via: 'site-packages' });
    expect(by['libcublasLt.so.13']).toMatchObject({ dir: cublas, via: 'site-packages' });
    expect(ldLibraryPathAdditions(found)).toEqual([cublas]);
  });

  it('reports each missing library with its fix', () => {
    const found = findCudaLibs({ dirs: [toolkit] });
    expect(found.map((f) => f.name)).toEqual(CUDA_LIBS.map((l) => l.name));
    const missing = found.filter((f) => !f.dir);
    expect(missing.map((f) => f.name)).toEqual(['libcublas.so.13', 'libcublasLt.so.13', 'libcuda.so.1']);
    expect(missing.find((f) => f.name === 'libcuda.so.1')!.fix).toMatch(/driver/);
    expect(ldLibraryPathAdditions(found)).toEqual([toolkit]);
  });
});

describe('versionProblems', () => {
  const bin = put('ort-bin', 'libonnxruntime.so.1');
  const provider = put('provider', ...PROVIDER_LIBS);

  it('accepts the pinned versions', () => {
    expect(versionProblems(ORT_VERSION, bin, provider)).toEqual([]);
  });
  it('rejects another onnxruntime-node version', () => {
    expect(versionProblems('1.30.0', bin, provider).join('\n')).toMatch(/onnxruntime-node is 1\.30\.0.*built for ORT 1\.29\.0/);
  });
  it('rejects a provider library of another ORT build and a missing core library', () => {
    const other = put('provider-other', 'libonnxruntime_providers_shared.so');
    writeFileSync(join(other, 'libonnxruntime_providers_cuda.so'), 'ORT 1.22.0');
    expect(versionProblems(ORT_VERSION, bin, other).join('\n')).toMatch(/does not carry ORT version string 1\.29\.0/);
    expect(versionProblems(ORT_VERSION, join(root, 'empty'), provider).join('\n')).toMatch(/no libonnxruntime\.so\.1/);
  });
});
