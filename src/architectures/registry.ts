import { LensError } from '../lens/types.js';
import { gpt2 } from './gpt2.js';
import { llama } from './llama.js';
import { mistral } from './mistral.js';
import { qwen2 } from './qwen2.js';
import type { ArchitectureSpec, RawConfig } from './spec.js';

const families = new Map<string, ArchitectureSpec>();

/** Adds (or replaces) a family; its aliases and HF class names become detectable too. */
export function registerArchitecture(spec: ArchitectureSpec): void {
  families.set(spec.family, spec);
}

for (const spec of [gpt2, llama, mistral, qwen2]) registerArchitecture(spec);

export function supportedFamilies(): string[] {
  return [...families.values()].flatMap((s) => [s.family, ...(s.aliases ?? [])]).sort();
}

function byName(name: string): ArchitectureSpec | undefined {
  const key = name.toLowerCase();
  for (const spec of families.values()) {
    if (spec.family === key || spec.aliases?.includes(key)) return spec;
  }
  return undefined;
}

/** Explicit type, then config.model_type (and aliases), then config.architectures. */
export function detectArchitecture(config: RawConfig, explicit?: string): ArchitectureSpec {
  if (explicit) {
    const spec = byName(explicit);
    if (!spec) throw unknown(`model type "${explicit}"`);
    return spec;
  }
  const modelType = typeof config.model_type === 'string' ? config.model_type : undefined;
  const fromType = modelType ? byName(modelType) : undefined;
  if (fromType) return fromType;
  const classes = Array.isArray(config.architectures) ? (config.architectures as string[]) : [];
  for (const cls of classes) {
    for (const spec of families.values()) if (spec.architectures?.includes(cls)) return spec;
  }
  throw unknown(
    modelType ? `model_type "${modelType}"` : classes.length ? `architectures ${JSON.stringify(classes)}` : 'a config.json without model_type',
  );
}

function unknown(what: string): LensError {
  return new LensError(
    'UNKNOWN_MODEL_TYPE',
    `Unsupported ${what}. Supported model types: ${supportedFamilies().join(', ')}. Register your own with registerArchitecture().`,
  );
}
