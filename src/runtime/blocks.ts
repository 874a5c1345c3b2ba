import type { ModelPlan } from '../architectures/spec.js';
import { BLOCK_INPUTS, BLOCK_OUTPUTS } from '../graph/block.js';
import { attentionBias, rotaryTables } from './inputs.js';
import { ort } from './sessions.js';

/**
 * The block sessions applied to one right-padded batch. Masks (one per distinct sliding window) and
 * rotary tables depend only on the batch's lengths, so they are built once and reused by every layer.
 */
export class BlockStack {
  private readonly biases = new Map<number | null, ort.Tensor>();
  private readonly rotary: Record<string, ort.Tensor> = {};
  private readonly B: number;

  constructor(
    private readonly plan: ModelPlan,
    private readonly sessions: ort.InferenceSession[],
    private readonly lengths: number[],
    readonly T: number,
  ) {
    this.B = lengths.length;
    const rot = plan.blocks[0]?.attn.rotary;
    if (rot) {
      const { cos, sin } = rotaryTables(rot, this.B, T, lengths);
      this.rotary[BLOCK_INPUTS.cos] = new ort.Tensor('float32', cos, [this.B, T, rot.dims / 2]);
      this.rotary[BLOCK_INPUTS.sin] = new ort.Tensor('float32', sin, [this.B, T, rot.dims / 2]);
    }
  }

  /** Block `layer` on hidden [B, T, D]: the residual after the block and right after its attention. */
  async run(layer: number, hidden: Float32Array): Promise<{ hidden: Float32Array; afterAttn: Float32Array }> {
    const out = await this.sessions[layer].run({
      [BLOCK_INPUTS.hidden]: new ort.Tensor('float32', hidden, [this.B, this.T, this.plan.hiddenSize]),
      [BLOCK_INPUTS.bias]: this.bias(this.plan.blocks[layer].attn.slidingWindow),
      ...this.rotary,
    });
    return { hidden: out[BLOCK_OUTPUTS.hidden].data as Float32Array, afterAttn: out[BLOCK_OUTPUTS.attnResidual].data as Float32Array };
  }

  private bias(window: number | null): ort.Tensor {
    let t = this.biases.get(window);
    if (!t) {
      t = new ort.Tensor('float32', attentionBias(this.lengths, this.T, window), [this.B, 1, this.T, this.T]);
      this.biases.set(window, t);
    }
    return t;
  }
}
