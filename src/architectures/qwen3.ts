import { bool, num } from './config.js';
import { llamaPlan } from './llama.js';
import { qwen2Window } from './qwen2.js';
import type { ArchitectureSpec, NormSpec, RawConfig } from './spec.js';

// Qwen3 = Qwen2's window rules without its q/k/v biases (attention_bias, off in the releases),
// plus a per-head RMSNorm on q and k (weights [head_dim]) before the rotary.
export const qwen3: ArchitectureSpec = {
  family: 'qwen3',
  architectures: ['Qwen3ForCausalLM', 'Qwen3Model'],
  paths: { embed: 'model.embed_tokens', layers: 'model.layers', finalNorm: 'model.norm', unembed: 'lm_head' },
  plan(config: RawConfig) {
    const base = llamaPlan('qwen3', config, {
      qkvBias: (c) => bool(c, 'attention_bias', false),
      window: qwen2Window,
      defaultTied: false,
    });
    const eps = num(config, ['rms_norm_eps'], 1e-6);
    const rms = (name: string): NormSpec => ({ kind: 'rmsnorm', eps, weight: `${name}.weight` });
    return {
      ...base,
      blocks: base.blocks.map((b, i) => ({
        ...b,
        attn: { ...b.attn, qNorm: rms(`model.layers.${i}.self_attn.q_norm`), kNorm: rms(`model.layers.${i}.self_attn.k_norm`) },
      })),
    };
  },
};
