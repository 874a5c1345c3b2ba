import { bool, num, optNum } from './config.js';
import { llamaPlan } from './llama.js';
import { blockPrefix, DECODER_PATHS, linear } from './names.js';
import type { ArchitectureSpec, RawConfig } from './spec.js';

// Mixtral = Mistral attention (sliding window on every layer when set) with a routed MLP:
// `block_sparse_moe.gate` scores num_local_experts experts, the top num_experts_per_tok run, and
// their softmax weights are renormalised over the chosen ones. Expert w1 = gate, w3 = up, w2 = down.
export const mixtral: ArchitectureSpec = {
  family: 'mixtral',
  architectures: ['MixtralForCausalLM', 'MixtralModel'],
  paths: DECODER_PATHS,
  plan(config: RawConfig) {
    const base = llamaPlan('mixtral', config, {
      qkvBias: (c) => bool(c, 'attention_bias', false),
      window: (c) => optNum(c, 'sliding_window') ?? null,
      defaultTied: false,
    });
    const numExperts = num(config, ['num_local_experts']);
    const topK = num(config, ['num_experts_per_tok'], 2);
    const lin = (name: string) => linear(name, false);
    return {
      ...base,
      blocks: base.blocks.map((b, i) => {
        const p = `${blockPrefix(DECODER_PATHS, i)}.block_sparse_moe`;
        return {
          ...b,
          mlp: {
            kind: 'moe' as const,
            size: b.mlp.size,
            router: lin(`${p}.gate`),
            experts: Array.from({ length: numExperts }, (_, e) => ({
              gate: lin(`${p}.experts.${e}.w1`),
              up: lin(`${p}.experts.${e}.w3`),
              down: lin(`${p}.experts.${e}.w2`),
            })),
            topK,
            act: b.mlp.act,
          },
        };
      }),
    };
  },
};
