import type { Checkpoint } from '../checkpoint/hf-dir.js';
import { dataLocation } from '../checkpoint/hf-dir.js';
import type { StTensor } from '../checkpoint/safetensors.js';
import { LensError } from '../errors.js';
import type { ComputeType, ElemType, GraphBuilder } from './onnx-builder.js';

const ELEM_OF: Record<string, ElemType> = { F32: 'float', F16: 'float16', BF16: 'bfloat16' };

/**
 * Resolves checkpoint tensor names (with the family's optional prefixes), checks shapes, and
 * records which tensors the graphs use so unknown leftovers can be reported.
 */
export class WeightBinder {
  readonly used = new Set<string>();
  /** Per graph: a weight used twice (e.g. the unembedding in the stats graph) is declared once. */
  private bound = new WeakMap<GraphBuilder, Map<string, string>>();

  constructor(
    readonly ckpt: Checkpoint,
    private readonly optionalPrefixes: string[] = [],
    /** Compute type of the graphs built over these weights (the graph builders read it). */
    readonly compute: ComputeType = 'float',
  ) {}

  find(name: string): StTensor | undefined {
    const direct = this.ckpt.tensors.get(name);
    if (direct) return direct;
    for (const prefix of this.optionalPrefixes) {
      if (name.startsWith(prefix)) {
        const t = this.ckpt.tensors.get(name.slice(prefix.length));
        if (t) return t;
      }
    }
    return undefined;
  }

  tensor(name: string, shape?: number[]): StTensor {
    const t = this.find(name);
    if (!t) throw new LensError('CHECKPOINT_INVALID', `weight "${name}" is missing from the checkpoint in ${this.ckpt.dir}`);
    if (shape && (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))) {
      throw new LensError(
        'CHECKPOINT_INVALID',
        `weight "${t.name}" has shape [${t.shape}] but config.json implies [${shape}]`,
      );
    }
    if (!ELEM_OF[t.dtype]) throw new LensError('CHECKPOINT_INVALID', `weight "${t.name}" has unsupported dtype ${t.dtype}`);
    this.used.add(t.name);
    return t;
  }

  /**
   * Declares the weight as an external initializer pointing into the safetensors file, and returns
   * it in the graph's compute type: a Cast when the checkpoint dtype differs, which ORT folds once
   * at session creation. BF16 goes to float16 in fp16 graphs too (its exponent range is wider, but
   * weights are small), because the CUDA EP lacks bf16 kernels for several ops and CPU for MatMul.
   */
  bind(g: GraphBuilder, name: string, shape?: number[]): string {
    const t = this.tensor(name, shape);
    let seen = this.bound.get(g);
    if (!seen) this.bound.set(g, (seen = new Map()));
    const hit = seen.get(t.name);
    if (hit) return hit;
    const elemType = ELEM_OF[t.dtype];
    const init = g.external(`w:${t.name}`, {
      elemType,
      dims: t.shape,
      location: dataLocation(this.ckpt, t),
      offset: t.fileOffset,
      length: t.byteLength,
    });
    if (elemType === g.compute) return init;
    return g.op('Cast', [init], { to: g.compute === 'float16' ? 10 : 1 }, `cast:${t.name}`);
  }

  /** Checkpoint tensors neither used by a graph nor matched by the skip list. */
  unused(skip: RegExp[]): string[] {
    return [...this.ckpt.tensors.keys()].filter((n) => !this.used.has(n) && !skip.some((r) => r.test(n)));
  }

  dominantDtype(): string {
    const bytes = new Map<string, number>();
    for (const t of this.ckpt.tensors.values()) bytes.set(t.dtype, (bytes.get(t.dtype) ?? 0) + t.byteLength);
    return [...bytes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';
  }
}
