import { bool, num } from './config.js';
import { llamaPlan } from './llama.js';
import { qwen2Window } from './qwen2.js';
import { blockPrefix, DECODER_PATHS, rmsNorm } from './names.js';
import type { ArchitectureSpec, RawConfig } from './spec.js';

// Qwen3 = Qwen2's window rules without its q/k/v biases (attention_bias, off in the releases),
// plus a per-head RMSNorm on q and k (weights [head_dim]) before the rotary.
export const qwen3: ArchitectureSpec = {
  family: 'qwen3',
  architectures: ['Qwen3ForCausalLM', 'Qwen3Model'],
  paths: DECODER_PATHS,
  plan(config: RawConfig) {
    const base = llamaPlan('qwen3', config, {
      qkvBias: (c) => bool(c, 'attention_bias', false),
      window: qwen2Window,
      defaultTied: false,
    });
    const eps = num(config, ['rms_norm_eps'], 1e-6);
    return {
      ...base,
      blocks: base.blocks.map((b, i) => {
        const p = blockPrefix(DECODER_PATHS, i);
        return { ...b, attn: { ...b.attn, qNorm: rmsNorm(`${p}.self_attn.q_norm`, eps), kNorm: rmsNorm(`${p}.self_attn.k_norm`, eps) } };
      }),
    };
  },
};
