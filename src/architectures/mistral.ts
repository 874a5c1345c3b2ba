import { bool, optNum } from './config.js';
import { llamaPlan } from './llama.js';
import type { ArchitectureSpec } from './spec.js';
import { DECODER_PATHS } from './names.js';

// Mistral = Llama + a sliding attention window on every layer (when `sliding_window` is set).
export const mistral: ArchitectureSpec = {
  family: 'mistral',
  architectures: ['MistralForCausalLM', 'MistralModel'],
  paths: DECODER_PATHS,
  plan: (config) =>
    llamaPlan('mistral', config, {
      qkvBias: (c) => bool(c, 'attention_bias', false),
      window: (c) => optNum(c, 'sliding_window') ?? null,
      defaultTied: false,
    }),
};
