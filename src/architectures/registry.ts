import { LensError } from '../errors.js';
import { gemma, gemma2 } from './gemma.js';
import { gptNeox } from './gpt-neox.js';
import { gpt2 } from './gpt2.js';
import { gptj } from './gptj.js';
import { llama } from './llama.js';
import { mistral } from './mistral.js';
import { mixtral } from './mixtral.js';
import { hfOlmo, olmo } from './olmo.js';
import { phi } from './phi.js';
import { phi3 } from './phi3.js';
import { qwen2 } from './qwen2.js';
import { qwen3 } from './qwen3.js';
import type { ArchitectureSpec, RawConfig } from './spec.js';

const families = new Map<string, ArchitectureSpec>();

/** Adds (or replaces) a family; its aliases and HF class names become detectable too. */
export function registerArchitecture(spec: ArchitectureSpec): void {
  families.set(spec.family, spec);
}

const BUILT_IN = [gpt2, llama, mistral, qwen2, gptj, gptNeox, phi, phi3, gemma, gemma2, olmo, hfOlmo, qwen3, mixtral];
for (const spec of BUILT_IN) registerArchitecture(spec);

/** Names of the registered families (no aliases), in registration order. */
export function registeredFamilies(): string[] {
  return [...families.keys()];
}

/** A registered family by its name or one of its aliases (case-insensitive). */
export function architecture(name: string): ArchitectureSpec | undefined {
  return byName(name);
}

export function supportedFamilies(): string[] {
  return [...families.values()].flatMap((s) => [s.family, ...(s.aliases ?? [])]).sort();
}

function byName(name: string): ArchitectureSpec | undefined {
  const key = name.toLowerCase();
  for (const spec of families.values()) {
    if (spec.family.toLowerCase() === key || spec.aliases?.some((a) => a.toLowerCase() === key)) return spec;
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
