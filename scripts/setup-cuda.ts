// npm run setup:cuda [-- --check | --remove | --from FILE.tgz | --ort-dir DIR]
//
// Opt-in: puts ONNX Runtime's CUDA execution provider next to onnxruntime-node's core library so
// `--device auto|cuda` can use a GPU. CPU users never run this, and nothing else downloads it.
// onnxruntime-node ships no CUDA provider for Linux through npm; the only npm package built for its
// exact ORT version (1.29.0, against CUDA 13) is com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9.
// The provider .so files must come from the same ORT build as libonnxruntime.so.1: ORT checks a
// provider API version at load time and refuses mismatches, so the versions are pinned here.

import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const ORT_VERSION = '1.29.0';
export const PROVIDER_PKG = 'com.github.asus4.onnxruntime.linux-x64-gpu';
export const PROVIDER_PKG_VERSION = '0.4.9';
export const PROVIDER_LIBS = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'] as const;
const PROVIDER_PATH_IN_TGZ = 'package/Plugins/Linux/x64';

/** Runtime libraries the CUDA provider links against, and how to get each. */
export const CUDA_LIBS: Array<{ name: string; fix: string }> = [
  { name: 'libcudart.so.13', fix: 'CUDA 13 runtime: pip install nvidia-cuda-runtime (or the CUDA 13 toolkit; PyTorch cu130 wheels carry it)' },
  { name: 'libcublas.so.13', fix: 'cuBLAS 13: pip install nvidia-cublas (PyTorch cu130 wheels carry it)' },
  { name: 'libcublasLt.so.13', fix: 'cuBLASLt 13: comes with nvidia-cublas (same folder as libcublas.so.13)' },
  { name: 'libcurand.so.10', fix: 'cuRAND: pip install nvidia-curand (PyTorch cu130 wheels carry it)' },
  { name: 'libcuda.so.1', fix: 'the NVIDIA driver (≥ 580 for CUDA 13); it is not an npm or pip package — install the driver' },
];

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface SearchPlaces {
  /** LD_LIBRARY_PATH, colon-separated. */
  ldLibraryPath?: string;
  /** Output of `ldconfig -p`. */
  ldconfig?: string;
  /** Extra folders to search directly (CUDA toolkits). */
  dirs?: string[];
  /** site-packages folders whose nvidia/<pkg>/lib subfolders hold pip-installed CUDA libraries. */
  sitePackages?: string[];
}

export interface LibLocation {
  name: string;
  /** Folder it was found in, or null. */
  dir: string | null;
  /** Where it was found: "LD_LIBRARY_PATH", "ldconfig", a CUDA folder or "site-packages". */
  via: string | null;
  fix: string;
}

function parseLdconfig(out: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    // "\tlibcudart.so.13 (libc6,x86-64) => /usr/local/cuda-13.0/lib/libcudart.so.13"
    const hit = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)/.exec(line);
    if (hit && !m.has(hit[1]) && (hit[2].includes('x86-64') || !hit[2].includes(','))) m.set(hit[1], dirname(hit[3]));
  }
  return m;
}

/** nvidia/<pkg>/lib folders under each site-packages folder (pip's CUDA wheels, PyTorch's dependencies). */
function nvidiaLibDirs(sitePackages: string[]): string[] {
  const out: string[] = [];
  for (const sp of sitePackages) {
    const nv = join(sp, 'nvidia');
    if (!isDir(nv)) continue;
    for (const pkg of readdirSync(nv).sort()) {
      // cu13 wheels use nvidia/cu13/lib; older ones nvidia/<component>/lib.
      for (const sub of ['lib', 'lib64']) if (isDir(join(nv, pkg, sub))) out.push(join(nv, pkg, sub));
    }
  }
  return out;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Finds each CUDA runtime library the provider needs, in the order the dynamic loader would (roughly). */
export function findCudaLibs(places: SearchPlaces, libs = CUDA_LIBS): LibLocation[] {
  const ld = (places.ldLibraryPath ?? '').split(':').filter(Boolean);
  const cache = parseLdconfig(places.ldconfig ?? '');
  const cudaDirs = places.dirs ?? [];
  const pipDirs = nvidiaLibDirs(places.sitePackages ?? []);
  return libs.map(({ name, fix }) => {
    const inDirs = (dirs: string[]) => dirs.find((d) => existsSync(join(d, name)));
    let dir = inDirs(ld);
    if (dir) return { name, dir, via: 'LD_LIBRARY_PATH', fix };
    const c = cache.get(name);
    if (c) return { name, dir: c, via: 'ldconfig', fix };
    dir = inDirs(cudaDirs);
    if (dir) return { name, dir, via: 'CUDA folder', fix };
    dir = inDirs(pipDirs);
    if (dir) return { name, dir, via: 'site-packages', fix };
    return { name, dir: null, via: null, fix };
  });
}

/** Folders found without being on the loader's path: they must go on LD_LIBRARY_PATH. */
export function ldLibraryPathAdditions(found: LibLocation[]): string[] {
  const dirs = found.filter((f) => f.dir && (f.via === 'CUDA folder' || f.via === 'site-packages')).map((f) => f.dir!);
  return [...new Set(dirs)];
}

/** The places this machine offers: LD_LIBRARY_PATH, ldconfig's cache, /usr/local/cuda*, Python site-packages. */
export function systemPlaces(): SearchPlaces {
  const run = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 });
    } catch {
      return '';
    }
  };
  const ldconfig = run('ldconfig', ['-p']) || run('/sbin/ldconfig', ['-p']);
  const dirs: string[] = [];
  for (const base of ['/usr/local', '/opt']) {
    if (!isDir(base)) continue;
    for (const e of readdirSync(base).sort().reverse()) {
      if (!/^cuda(-[\d.]+)?$/.test(e)) continue;
      for (const sub of ['lib64', 'lib', 'targets/x86_64-linux/lib']) if (isDir(join(base, e, sub))) dirs.push(join(base, e, sub));
    }
  }
  const sitePackages = new Set<string>();
  for (const py of ['python3', '/usr/bin/python3', 'python']) {
    const out = run(py, ['-c', 'import site,sys; print("\\n".join(site.getsitepackages()+[site.getusersitepackages()]))']);
    for (const line of out.split('\n')) if (line.trim()) sitePackages.add(line.trim());
  }
  return { ldLibraryPath: process.env.LD_LIBRARY_PATH, ldconfig, dirs, sitePackages: [...sitePackages] };
}

/** onnxruntime-node's folder with libonnxruntime.so.1, and its package version. */
export function ortNode(): { version: string; binDir: string } {
  const pkgJson = createRequire(join(ROOT, 'package.json')).resolve('onnxruntime-node/package.json');
  const version = (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  return { version, binDir: join(dirname(pkgJson), 'bin', 'napi-v6', 'linux', 'x64') };
}

/**
 * Checks the pieces agree before anything is copied: onnxruntime-node must be ORT_VERSION (what the
 * pinned provider was built for), its core library must be there, and the provider files must be
 * an ORT build of that version (the version string is compiled into every ORT library).
 */
export function versionProblems(ortVersion: string, binDir: string, providerDir: string): string[] {
  const problems: string[] = [];
  if (ortVersion !== ORT_VERSION) {
    problems.push(`onnxruntime-node is ${ortVersion}, but ${PROVIDER_PKG}@${PROVIDER_PKG_VERSION} is built for ORT ${ORT_VERSION}; install onnxruntime-node@${ORT_VERSION}`);
  }
  if (!existsSync(join(binDir, 'libonnxruntime.so.1'))) problems.push(`no libonnxruntime.so.1 in ${binDir}`);
  for (const lib of PROVIDER_LIBS) if (!existsSync(join(providerDir, lib))) problems.push(`${lib} is missing from ${providerDir}`);
  if (!problems.length && !readFileSync(join(providerDir, PROVIDER_LIBS[0])).includes(Buffer.from(ORT_VERSION))) {
    problems.push(`${PROVIDER_LIBS[0]} does not carry ORT version string ${ORT_VERSION}; wrong package?`);
  }
  return problems;
}

/** Downloads (once) and unpacks the provider package into the cache; returns the folder with the .so files. */
function fetchProvider(cache: string, fromTgz?: string): string {
  mkdirSync(cache, { recursive: true });
  const tgz = fromTgz ? resolve(fromTgz) : join(cache, `${PROVIDER_PKG}-${PROVIDER_PKG_VERSION}.tgz`);
  if (!existsSync(tgz)) {
    console.log(`downloading ${PROVIDER_PKG}@${PROVIDER_PKG_VERSION} (≈ 230 MB, once) into ${cache} …`);
    execFileSync('npm', ['pack', '-q', `${PROVIDER_PKG}@${PROVIDER_PKG_VERSION}`, '--pack-destination', cache], { stdio: 'inherit' });
  }
  const out = join(cache, 'unpacked');
  if (!PROVIDER_LIBS.every((l) => existsSync(join(out, PROVIDER_PATH_IN_TGZ, l)))) {
    mkdirSync(out, { recursive: true });
    execFileSync('tar', ['xzf', tgz, '-C', out, ...PROVIDER_LIBS.map((l) => `${PROVIDER_PATH_IN_TGZ}/${l}`)], { stdio: 'inherit' });
  }
  return join(out, PROVIDER_PATH_IN_TGZ);
}

function report(found: LibLocation[]): boolean {
  console.log('CUDA runtime libraries the provider loads:');
  for (const f of found) {
    console.log(f.dir ? `  found    ${f.name.padEnd(18)} ${f.dir}  (${f.via})` : `  MISSING  ${f.name.padEnd(18)} → ${f.fix}`);
  }
  const add = ldLibraryPathAdditions(found);
  if (add.length) console.log(`\nThese folders are not on the loader's path; before starting lensgate:\n  export LD_LIBRARY_PATH=${add.join(':')}\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}`);
  return found.every((f) => f.dir);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      check: { type: 'boolean', default: false },
      remove: { type: 'boolean', default: false },
      from: { type: 'string' },
      'ort-dir': { type: 'string' },
      cache: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(`usage: npm run setup:cuda [-- options]
  (no option)      download ${PROVIDER_PKG}@${PROVIDER_PKG_VERSION} once, copy the CUDA provider next to onnxruntime-node, check CUDA libraries
  --check          only report what is installed and which CUDA libraries are found / missing
  --remove         delete the copied provider libraries (back to CPU only)
  --from FILE.tgz  use an already downloaded package tarball (offline machines)
  --cache DIR      download cache (default .cache/cuda-provider, or $LENSGATE_CUDA_CACHE)
  --ort-dir DIR    install into DIR instead of onnxruntime-node's binary folder (testing)`);
    return;
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    console.error(`setup:cuda supports Linux x64 only (this is ${process.platform}/${process.arch}); lensgate runs on CPU here.`);
    process.exit(1);
  }
  const ort = ortNode();
  const binDir = values['ort-dir'] ? resolve(values['ort-dir']) : ort.binDir;
  if (values.remove) {
    for (const lib of PROVIDER_LIBS) rmSync(join(binDir, lib), { force: true });
    console.log(`removed the CUDA provider from ${binDir}; --device auto now uses the CPU`);
    return;
  }
  if (values.check) {
    const installed = PROVIDER_LIBS.every((l) => existsSync(join(binDir, l)));
    console.log(`onnxruntime-node ${ort.version}; CUDA provider ${installed ? 'installed' : 'not installed'} in ${binDir}\n`);
    process.exit(report(findCudaLibs(systemPlaces())) && installed ? 0 : 1);
  }
  const cache = resolve(values.cache ?? process.env.LENSGATE_CUDA_CACHE ?? join(ROOT, '.cache', 'cuda-provider'));
  const providerDir = fetchProvider(cache, values.from);
  const problems = versionProblems(ort.version, values['ort-dir'] ? ort.binDir : binDir, providerDir);
  if (problems.length) {
    for (const p of problems) console.error(`setup:cuda: ${p}`);
    process.exit(1);
  }
  mkdirSync(binDir, { recursive: true });
  for (const lib of PROVIDER_LIBS) copyFileSync(join(providerDir, lib), join(binDir, lib));
  console.log(`installed the ORT ${ORT_VERSION} CUDA provider into ${binDir}\n`);
  const ok = report(findCudaLibs(systemPlaces()));
  console.log(ok ? '\nAll CUDA libraries found: start with --device cuda (or auto).' : '\nlensgate falls back to CPU under --device auto until the missing libraries are installed.');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
