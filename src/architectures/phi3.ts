import { optNum, rotary, rotaryDims } from './config.js';
import { llamaPlan } from './llama.js';
import type { ArchitectureSpec, RawConfig } from './spec.js';
import { blockPrefix, DECODER_PATHS } from './names.js';

// Phi-3 = Mistral-shaped block (sequential, RMSNorm, sliding window on every layer when set) with
// fused projections: qkv_proj = [q | k | v] and gate_up_proj = [gate | up]; LongRoPE when
// rope_scaling says so (the 128k variants).
export const phi3: ArchitectureSpec = {
  family: 'phi3',
  aliases: ['phi-3', 'phi-3.5', 'phi-4'],
  architectures: ['Phi3ForCausalLM', 'Phi3Model'],
  paths: DECODER_PATHS,
  plan(config: RawConfig) {
    const base = llamaPlan('phi3', config, {
      qkvBias: () => false,
      window: (c) => optNum(c, 'sliding_window') ?? null,
      defaultTied: false,
    });
    return {
      ...base,
      blocks: base.blocks.map((b, i) => {
        const p = blockPrefix(DECODER_PATHS, i);
        const hd = b.attn.headDim;
        return {
          ...b,
          attn: {
            ...b.attn,
            qkv: { kind: 'fused' as const, qkv: { weight: `${p}.self_attn.qkv_proj.weight`, layout: 'out_in' as const } },
            // Phi-4-mini rotates 3/4 of each head; Phi-3 the whole head.
            rotary: rotary(config, rotaryDims(config, hd), 'half'),
          },
          mlp: {
            kind: 'gated_fused' as const,
            size: b.mlp.size,
            gateUp: { weight: `${p}.mlp.gate_up_proj.weight`, layout: 'out_in' as const },
            down: { weight: `${p}.mlp.down_proj.weight`, layout: 'out_in' as const },
            act: b.mlp.act,
            order: 'gate_up' as const,
          },
        };
      }),
    };
  },
};
