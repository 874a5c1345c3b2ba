import type { ModelPlan } from '../architectures/spec.js';
import { BLOCK_INPUTS, BLOCK_OUTPUTS } from '../graph/block.js';
import { attentionBias, rotaryTables } from './inputs.js';
import { ort, type OrtSession } from './sessions.js';

/** Keys (after norm and rotary) and values of every layer for the positions already run. */
export class KvCache {
  /** Cached positions per row. */
  length = 0;
  readonly layers: Array<{ key: ort.Tensor; value: ort.Tensor } | undefined>;

  constructor(readonly numLayers: number) {
    this.layers = new Array(numLayers);
  }
}

/**
 * The block sessions applied to one right-padded batch of T new positions (after `cache.length`
 * cached ones when a cache is given). Masks (one per distinct sliding window) and rotary tables
 * depend only on the lengths and the offset, so they are built once and reused by every layer.
 */
export class BlockStack {
  private readonly biases = new Map<number | null, ort.Tensor>();
  private readonly rotary: Record<string, ort.Tensor> = {};
  private readonly B: number;
  private readonly past: number;

  constructor(
    private readonly plan: ModelPlan,
    private readonly sessions: OrtSession[],
    private readonly lengths: number[],
    readonly T: number,
    /** Read for past keys/values and updated with each layer's present ones. */
    private readonly cache?: KvCache,
  ) {
    this.B = lengths.length;
    this.past = cache?.length ?? 0;
    const rot = plan.blocks[0]?.attn.rotary;
    if (rot) {
      const { cos, sin } = rotaryTables(rot, this.B, T, lengths, this.past);
      this.rotary[BLOCK_INPUTS.cos] = new ort.Tensor('float32', cos, [this.B, T, rot.dims / 2]);
      this.rotary[BLOCK_INPUTS.sin] = new ort.Tensor('float32', sin, [this.B, T, rot.dims / 2]);
    }
  }

  /** Block `layer` on hidden [B, T, D]: the residual after the block and right after its attention. */
  async run(layer: number, hidden: Float32Array): Promise<{ hidden: Float32Array; afterAttn: Float32Array }> {
    const { numKvHeads: KV, headDim: hd } = this.plan.blocks[layer].attn;
    const cached = this.cache?.layers[layer];
    const empty = () => new ort.Tensor('float32', new Float32Array(0), [this.B, KV, 1, 0, hd]);
    const out = await this.sessions[layer].run({
      [BLOCK_INPUTS.hidden]: new ort.Tensor('float32', hidden, [this.B, this.T, this.plan.hiddenSize]),
      [BLOCK_INPUTS.bias]: this.bias(this.plan.blocks[layer].attn.slidingWindow),
      [BLOCK_INPUTS.pastKey]: cached?.key ?? empty(),
      [BLOCK_INPUTS.pastValue]: cached?.value ?? empty(),
      ...this.rotary,
    });
    if (this.cache) {
      this.cache.layers[layer] = { key: out[BLOCK_OUTPUTS.presentKey], value: out[BLOCK_OUTPUTS.presentValue] };
      if (layer === this.plan.numLayers - 1) this.cache.length = this.past + this.T;
    }
    return { hidden: out[BLOCK_OUTPUTS.hidden].data as Float32Array, afterAttn: out[BLOCK_OUTPUTS.attnResidual].data as Float32Array };
  }

  private bias(window: number | null): ort.Tensor {
    let t = this.biases.get(window);
    if (!t) {
      const K = this.past + this.T;
      t = new ort.Tensor('float32', attentionBias(this.lengths, this.T, window, this.past), [this.B, 1, this.T, K]);
      this.biases.set(window, t);
    }
    return t;
  }
}
