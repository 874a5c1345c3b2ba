// Registering a re-packaged checkpoint without touching lensgate's source: name a built-in (or
// previously registered) family that computes the same thing, and say where this checkpoint keeps
// its modules — the seed's MODEL_CONFIGS idea (`layers`, `norm`, `lm_head` string paths).
import { LensError } from '../errors.js';
import { architecture, registerArchitecture } from './registry.js';
import type { ArchitectureSpec, LayoutPaths, ModelPlan, RawConfig } from './spec.js';

export interface LayoutOptions {
  /** The new family name (matched against config.json `model_type`, case-insensitive). */
  family: string;
  /** A registered family with the same computation: 'gpt2', 'llama', 'gemma2', 'mixtral', … */
  base: string;
  aliases?: string[];
  /** HF class names in config.json `architectures` that mean this family. */
  architectures?: string[];
  /**
   * Where this checkpoint keeps the base family's top-level modules, as state-dict prefixes:
   * e.g. `{ embed: 'decoder.tok', layers: 'decoder.blocks', finalNorm: 'decoder.norm', unembed: 'head' }`.
   * Omitted entries keep the base family's names.
   */
  paths?: Partial<LayoutPaths>;
  /** Any further renaming (e.g. sub-modules inside a block), applied to every name after `paths`. */
  rename?: (name: string) => string;
  /** Adapts config.json before the base family reads it (e.g. renamed keys). */
  config?: (config: RawConfig) => RawConfig;
  /** Last word on the plan: replace a block, the final norm or the unembedding with your own specs. */
  adjust?: (plan: ModelPlan, config: RawConfig) => ModelPlan;
}

const PATH_KEYS = ['embed', 'positions', 'layers', 'finalNorm', 'unembed'] as const;
// Fields of a plan that hold checkpoint tensor names (Linear, NormSpec, EmbeddingSpec, UnembedSpec).
const NAME_FIELDS = new Set(['weight', 'bias', 'tokens', 'positions', 'ignored']);

/** A spec for `options` (not registered); `registerLayout` registers it too. */
export function defineLayout(options: LayoutOptions): ArchitectureSpec {
  const base = architecture(options.base);
  if (!base) throw new LensError('UNKNOWN_MODEL_TYPE', `registerLayout: no registered family "${options.base}" to use as base`);
  if (options.paths && !base.paths) {
    throw new LensError('UNKNOWN_MODEL_TYPE', `registerLayout: family "${base.family}" declares no paths to rename; use rename() instead`);
  }
  const from = base.paths;
  const moves: Array<[string, string]> = [];
  for (const key of PATH_KEYS) {
    const to = options.paths?.[key];
    const old = from?.[key];
    if (to !== undefined && old !== undefined && to !== old) moves.push([old, to]);
  }
  // Longest prefix first, so `model.layers` wins over a shorter prefix it contains.
  moves.sort((a, b) => b[0].length - a[0].length);
  const rename = (name: string): string => {
    let out = name;
    for (const [old, to] of moves) {
      if (name === old || name.startsWith(`${old}.`)) {
        out = to + name.slice(old.length);
        break;
      }
    }
    return options.rename ? options.rename(out) : out;
  };
  return {
    family: options.family,
    aliases: options.aliases,
    architectures: options.architectures,
    paths: from && { ...from, ...options.paths },
    plan(raw: RawConfig) {
      const config = options.config ? options.config(raw) : raw;
      const plan: ModelPlan = { ...renameTensors(base.plan(config), rename), family: options.family };
      return options.adjust ? options.adjust(plan, config) : plan;
    },
  };
}

/** Defines and registers a family from a base family and weight-name prefixes; returns its spec. */
export function registerLayout(options: LayoutOptions): ArchitectureSpec {
  const spec = defineLayout(options);
  registerArchitecture(spec);
  return spec;
}

/** A copy of `value` with every tensor-name field passed through `rename` (typed arrays and RegExps kept). */
function renameTensors<T>(value: T, rename: (name: string) => string): T {
  if (Array.isArray(value)) return value.map((v) => renameTensors(v, rename)) as T;
  if (value === null || typeof value !== 'object' || ArrayBuffer.isView(value) || value instanceof RegExp) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = NAME_FIELDS.has(k) && typeof v === 'string' ? rename(v) : renameTensors(v, rename);
  }
  return out as T;
}
