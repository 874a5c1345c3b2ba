import { QuantizedWeights, type QuantizedWeight } from '../checkpoint/quantize.js';
import type { Checkpoint } from '../checkpoint/hf-dir.js';
import type { StTensor } from '../checkpoint/safetensors.js';
import type { QuantizedSource } from '../graph/weights.js';
import type { Provider } from '../runtime/sessions.js';
import { LensError, type ComputeDtype, type OpenOptions } from './types.js';

export interface QuantRequest {
  t: StTensor;
  layout: 'out_in' | 'in_out';
}

/**
 * The block weights of one layer, quantized just before that layer's graph is built. A build with
 * nothing prepared records what the layer asks for (takeRequests) and gets null, so the graph falls
 * back to the stored weights: that build only validates and is never run.
 */
export class QuantizedBlocks implements QuantizedSource {
  private requests: QuantRequest[] = [];
  private ready = new Map<string, QuantizedWeight>();

  constructor(readonly weights: QuantizedWeights) {}

  request(t: StTensor, layout: 'out_in' | 'in_out'): QuantizedWeight | null {
    const hit = this.ready.get(t.name);
    if (hit) return hit;
    this.requests.push({ t, layout });
    return null;
  }

  takeRequests(): QuantRequest[] {
    const out = this.requests;
    this.requests = [];
    return out;
  }

  async prepare(reqs: QuantRequest[]): Promise<void> {
    for (const r of reqs) this.ready.set(r.t.name, await this.weights.get(r.t, r.layout));
  }

  /** Drops the layer's quantized bytes once its session holds (packed) copies. */
  release(): void {
    this.ready.clear();
  }
}

/** Checks that quantization applies here (CPU, float32 compute) and opens the cache. */
export function quantizedBlocks(opts: OpenOptions, ckpt: Checkpoint, provider: Provider, computeType: ComputeDtype): QuantizedBlocks {
  if (opts.quantize !== 'int8' && opts.quantize !== 'int4') {
    throw new LensError('BAD_USER_INPUT', `quantize must be "int8" or "int4" (got ${JSON.stringify(opts.quantize)})`);
  }
  if (provider !== 'cpu' || computeType !== 'float32') {
    throw new LensError(
      'BAD_USER_INPUT',
      `quantize=${opts.quantize} runs on the CPU execution provider with float32 compute (this model: ${provider}, ${computeType}); open it with device cpu`,
    );
  }
  const files = [...new Set([...ckpt.tensors.values()].map((t) => t.file))].sort();
  return new QuantizedBlocks(new QuantizedWeights(opts.quantize, ckpt.dir, files, opts.quantizeCache));
}
