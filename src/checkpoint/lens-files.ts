// Published lens files, read as they are:
// - tuned lens (AlignmentResearch/tuned-lens `TunedLens.save`): a folder with config.json and params.pt,
//   the state dict of `layer_translators` (an nn.ModuleList of num_hidden_layers nn.Linear(d, d)), keys
//   "<i>.weight" [d, d] and "<i>.bias" [d]; params.safetensors with the same keys is accepted too.
// - Jacobian lens (anthropics/jacobian-lens `JacobianLens.save`): one .pt file holding
//   {J: {layer: [d, d]}, source_layers, n_prompts, d_model, provenance}, usually fp16; a .safetensors
//   with tensors "J.<layer>" is accepted too.
// Nothing here knows the model: the lens layer checks the files against it.
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LensError } from '../errors.js';
import { readSafetensorsHeader, type StDtype } from './safetensors.js';
import { isTorchTensor, readTorchFile, type TorchTensor } from './torch-file.js';

export type TranslatorKind = 'TUNED' | 'JACOBIAN';

export interface Translator {
  /** [d, d], row-major, applied as h·Wᵀ (torch Linear and J @ h alike). */
  weight: TorchTensor;
  bias?: TorchTensor;
}

export interface LensFile {
  kind: TranslatorKind;
  /** Where it was read from (operator-side; never shown to clients). */
  path: string;
  dModel: number;
  /** Tuned lens: config.num_hidden_layers; Jacobian lens: absent. */
  numHiddenLayers?: number;
  unembedHash?: string;
  /**
   * Tuned lens: translator i for hidden_states[i] (0 = embeddings, i = output of block i − 1).
   * Jacobian lens: J[l] for the output of block l.
   */
  translators: Map<number, Translator>;
  /** Descriptive fields worth showing an operator (base model, n_prompts, provenance). */
  about: Record<string, unknown>;
}

function invalid(path: string, msg: string): LensError {
  return new LensError('LENS_INVALID', `${path}: ${msg}`);
}

const FLOAT_DTYPES = new Set<StDtype>(['F32', 'F16', 'BF16', 'F64']);

function checkSquare(path: string, name: string, t: unknown, d: number): TorchTensor {
  if (!isTorchTensor(t)) throw invalid(path, `${name} is not a tensor`);
  if (!FLOAT_DTYPES.has(t.dtype)) throw invalid(path, `${name} has dtype ${t.dtype}; a float tensor is expected`);
  if (t.shape.length !== 2 || t.shape[0] !== d || t.shape[1] !== d) {
    throw invalid(path, `${name} has shape [${t.shape}] but d_model ${d} implies [${d}, ${d}]`);
  }
  return t;
}

function readBytes(file: string, offset: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    let at = 0;
    while (at < length) {
      const n = readSync(fd, buf, at, length - at, offset + at);
      if (n === 0) throw invalid(file, 'file ends inside a tensor');
      at += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** A safetensors file as name → tensor (same shape as the torch reader's output). */
function readSafetensorsTensors(file: string): { tensors: Map<string, TorchTensor>; metadata: Record<string, string> } {
  const { tensors, metadata } = readSafetensorsHeader(file);
  const out = new Map<string, TorchTensor>();
  for (const t of tensors) out.set(t.name, { dtype: t.dtype, shape: t.shape, bytes: readBytes(t.file, t.fileOffset, t.byteLength) });
  return { tensors: out, metadata };
}

async function stateDict(path: string): Promise<Map<string, TorchTensor>> {
  if (path.endsWith('.safetensors')) return readSafetensorsTensors(path).tensors;
  const root = await readTorchFile(path);
  if (!(root instanceof Map)) throw invalid(path, 'params.pt does not hold a state dict');
  const out = new Map<string, TorchTensor>();
  for (const [k, v] of root) {
    if (!isTorchTensor(v)) throw invalid(path, `state dict entry ${String(k)} is not a tensor`);
    out.set(String(k), v);
  }
  return out;
}

function int(path: string, field: string, v: unknown): number {
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) throw invalid(path, `${field} must be a non-negative integer (got ${JSON.stringify(v)})`);
  return n;
}

/** A tuned-lens folder: config.json + params.pt (or params.safetensors). */
export async function readTunedLens(dir: string): Promise<LensFile> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw invalid(dir, 'a tuned lens is a folder with config.json and params.pt');
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw invalid(dir, 'config.json is missing');
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (e) {
    throw invalid(configPath, `not valid JSON (${(e as Error).message})`);
  }
  const lensType = config.lens_type ?? 'linear_tuned_lens';
  if (lensType !== 'linear_tuned_lens') throw invalid(configPath, `lens_type "${String(lensType)}" is not a linear tuned lens`);
  const d = int(configPath, 'd_model', config.d_model);
  const layers = int(configPath, 'num_hidden_layers', config.num_hidden_layers);
  const bias = config.bias ?? true;
  const params = ['params.pt', 'params.safetensors'].map((f) => join(dir, f)).find(existsSync);
  if (!params) throw invalid(dir, 'params.pt (or params.safetensors) is missing');
  const sd = await stateDict(params);
  const translators = new Map<number, Translator>();
  for (let i = 0; i < layers; i++) {
    const weight = checkSquare(params, `${i}.weight`, sd.get(`${i}.weight`), d);
    let b: TorchTensor | undefined;
    if (bias) {
      const t = sd.get(`${i}.bias`);
      if (!isTorchTensor(t) || t.shape.length !== 1 || t.shape[0] !== d || !FLOAT_DTYPES.has(t.dtype)) {
        throw invalid(params, `${i}.bias is missing or not a [${d}] float tensor (config says bias: true)`);
      }
      b = t;
    }
    translators.set(i, { weight, bias: b });
  }
  const expected = layers * (bias ? 2 : 1);
  if (sd.size !== expected) {
    const extra = [...sd.keys()].filter((k) => !/^\d+\.(weight|bias)$/.test(k) || Number(k.split('.')[0]) >= layers);
    throw invalid(params, `holds ${sd.size} tensors; num_hidden_layers ${layers} and bias ${bias} imply ${expected} (unexpected: ${extra.slice(0, 4).join(', ')})`);
  }
  const hash = config.unembed_hash;
  return {
    kind: 'TUNED',
    path: dir,
    dModel: d,
    numHiddenLayers: layers,
    unembedHash: typeof hash === 'string' && hash ? hash : undefined,
    translators,
    about: { base_model_name_or_path: config.base_model_name_or_path ?? null, base_model_revision: config.base_model_revision ?? null },
  };
}

/** A Jacobian lens file (`*_jacobian_lens.pt`, or .safetensors with "J.<layer>" tensors). */
export async function readJacobianLens(file: string): Promise<LensFile> {
  if (!existsSync(file) || !statSync(file).isFile()) throw invalid(file, 'a Jacobian lens is one .pt (or .safetensors) file');
  let J: Map<number, unknown>;
  let d: number;
  let about: Record<string, unknown>;
  let sourceLayers: number[] | undefined;
  if (file.endsWith('.safetensors')) {
    const { tensors, metadata } = readSafetensorsTensors(file);
    J = new Map();
    for (const [name, t] of tensors) {
      const m = /^J\.(\d+)$/.exec(name);
      if (!m) throw invalid(file, `tensor "${name}" is not named J.<layer>`);
      J.set(Number(m[1]), t);
    }
    const first = [...tensors.values()][0];
    d = metadata.d_model !== undefined ? int(file, 'd_model', Number(metadata.d_model)) : (first?.shape[0] ?? 0);
    about = { ...metadata };
  } else {
    const root = await readTorchFile(file);
    if (!(root instanceof Map) || !(root.get('J') instanceof Map)) throw invalid(file, 'expected a dict with a "J" dict of per-layer matrices');
    J = new Map();
    for (const [k, v] of root.get('J') as Map<unknown, unknown>) J.set(int(file, 'a J key', typeof k === 'string' ? Number(k) : k), v);
    d = int(file, 'd_model', root.get('d_model'));
    const sl = root.get('source_layers');
    if (sl !== undefined) {
      if (!Array.isArray(sl)) throw invalid(file, 'source_layers must be a list');
      sourceLayers = sl.map((x) => int(file, 'source_layers', x));
    }
    about = { n_prompts: root.get('n_prompts') ?? null, provenance: plain(root.get('provenance')) };
  }
  if (J.size === 0) throw invalid(file, 'J holds no matrices');
  if (sourceLayers && (sourceLayers.length !== J.size || sourceLayers.some((l) => !J.has(l)))) {
    throw invalid(file, `source_layers [${sourceLayers}] and the layers of J [${[...J.keys()]}] differ`);
  }
  const translators = new Map<number, Translator>();
  for (const [l, t] of [...J].sort((a, b) => a[0] - b[0])) translators.set(l, { weight: checkSquare(file, `J[${l}]`, t, d) });
  return { kind: 'JACOBIAN', path: file, dModel: d, translators, about };
}

/** Maps/arrays from the pickle as JSON-friendly values (for `about`). */
function plain(v: unknown): unknown {
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [String(k), plain(x)]));
  if (Array.isArray(v)) return v.map(plain);
  if (isTorchTensor(v)) return `tensor [${v.shape}] ${v.dtype}`;
  if (typeof v === 'bigint') return Number(v);
  return v ?? null;
}
