import { bool, num, optNum } from './config.js';
import { llamaPlan } from './llama.js';
import type { ArchitectureSpec, RawConfig } from './spec.js';
import { DECODER_PATHS } from './names.js';

// Qwen2 = Llama + biases on q/k/v (not o); sliding window only when use_sliding_window, and only on
// layers at or past max_window_layers (or as listed in `layer_types`).
export function qwen2Window(config: RawConfig, layer: number): number | null {
  const types = config.layer_types as string[] | undefined;
  const window = optNum(config, 'sliding_window') ?? null;
  if (Array.isArray(types)) return types[layer] === 'sliding_attention' ? window : null;
  if (!bool(config, 'use_sliding_window', false)) return null;
  return layer >= num(config, ['max_window_layers'], 0) ? window : null;
}

export const qwen2: ArchitectureSpec = {
  family: 'qwen2',
  aliases: ['qwen'],
  architectures: ['Qwen2ForCausalLM', 'Qwen2Model'],
  paths: DECODER_PATHS,
  plan: (config) => llamaPlan('qwen2', config, { qkvBias: () => true, window: qwen2Window, defaultTied: false }),
};
