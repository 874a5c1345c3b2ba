import type { Checkpoint } from '../checkpoint/hf-dir.js';
import { dataLocation } from '../checkpoint/hf-dir.js';
import type { StTensor } from '../checkpoint/safetensors.js';
import { LensError } from '../lens/types.js';
import type { ElemType, GraphBuilder } from './onnx-builder.js';

const ELEM_OF: Record<string, ElemType> = { F32: 'float', F16: 'float16', BF16: 'bfloat16' };

/**
 * Resolves checkpoint tensor names (with the family's optional prefixes), checks shapes, and
 * records which tensors the graphs use so unknown leftovers can be reported.
 */
export class WeightBinder {
  readonly used = new Set<string>();

  constructor(
    readonly ckpt: Checkpoint,
    private readonly optionalPrefixes: string[] = [],
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
   * a float32 value for it (a Cast for F16/BF16, which ORT folds once at session creation).
   */
  bind(g: GraphBuilder, name: string, shape?: number[]): string {
    const t = this.tensor(name, shape);
    const elemType = ELEM_OF[t.dtype];
    const init = g.external(`w:${t.name}`, {
      elemType,
      dims: t.shape,
      location: dataLocation(this.ckpt, t),
      offset: t.fileOffset,
      length: t.byteLength,
    });
    return elemType === 'float' ? init : g.op('Cast', [init], { to: 1 }, `cast:${t.name}`);
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
