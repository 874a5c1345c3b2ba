import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import { LensError } from '../errors.js';
import { readSafetensorsHeader, type StTensor } from './safetensors.js';

/** config.json as read; the family files interpret it. */
export type RawConfig = Record<string, unknown>;

export interface Checkpoint {
  /** Real path of the model directory. */
  dir: string;
  config: RawConfig;
  tensors: Map<string, StTensor>;
  /** Folder that ONNX external-data locations are relative to (common parent of the real weight files). */
  dataRoot: string;
  tokenizerJson: unknown;
  tokenizerConfig: unknown;
}

function readJson(file: string, what: string): unknown {
  if (!existsSync(file)) throw new LensError('CHECKPOINT_INVALID', `${what} not found: ${file}`);
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new LensError('CHECKPOINT_INVALID', `${what} is not valid JSON: ${file} (${(e as Error).message})`);
  }
}

export function weightFiles(dir: string): string[] {
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const map = (readJson(index, 'model.safetensors.index.json') as { weight_map?: Record<string, string> }).weight_map;
    if (!map || typeof map !== 'object') throw new LensError('CHECKPOINT_INVALID', `${index} has no weight_map`);
    const files = [...new Set(Object.values(map))].sort();
    for (const f of files) {
      if (!existsSync(join(dir, f))) throw new LensError('CHECKPOINT_INVALID', `shard ${f} listed in model.safetensors.index.json is missing`);
    }
    return files.map((f) => join(dir, f));
  }
  if (existsSync(join(dir, 'model.safetensors'))) return [join(dir, 'model.safetensors')];
  const any = readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  if (any.length) return any.map((f) => join(dir, f));
  const hasBin = readdirSync(dir).some((f) => f.endsWith('.bin') || f.endsWith('.pt'));
  throw new LensError(
    'CHECKPOINT_INVALID',
    `no *.safetensors weights in ${dir}${hasBin ? ' (PyTorch .bin checkpoints are not read; convert them to safetensors)' : ''}`,
  );
}

function commonDir(files: string[]): string {
  let root = dirname(files[0]);
  for (const f of files) {
    while (relative(root, f).startsWith('..')) root = dirname(root);
  }
  return root;
}

export function openCheckpoint(path: string): Checkpoint {
  if (!existsSync(path) || !statSync(path).isDirectory()) {
    throw new LensError('CHECKPOINT_INVALID', `model directory not found: ${path}`);
  }
  // HF cache snapshots are symlinks into blobs/; ORT refuses symlinked external data.
  const dir = realpathSync(path);
  const config = readJson(join(dir, 'config.json'), 'config.json') as RawConfig;
  if (!config || typeof config !== 'object' || Array.isArray(config)) {
    throw new LensError('CHECKPOINT_INVALID', 'config.json must hold a JSON object');
  }
  const files = weightFiles(dir).map((f) => realpathSync(f));
  const tensors = new Map<string, StTensor>();
  for (const file of files) {
    for (const t of readSafetensorsHeader(file).tensors) tensors.set(t.name, t);
  }
  const tokenizerJson = readJson(join(dir, 'tokenizer.json'), 'tokenizer.json');
  const cfgFile = join(dir, 'tokenizer_config.json');
  const tokenizerConfig = existsSync(cfgFile) ? readJson(cfgFile, 'tokenizer_config.json') : {};
  return { dir, config, tensors, dataRoot: commonDir(files), tokenizerJson, tokenizerConfig };
}

/** Location of a tensor's file relative to the external-data root, with forward slashes. */
export function dataLocation(ckpt: Checkpoint, t: StTensor): string {
  return relative(ckpt.dataRoot, t.file).split(sep).join('/') || basename(t.file);
}
