import type { Checkpoint } from '../checkpoint/hf-dir.js';
import { dataLocation } from '../checkpoint/hf-dir.js';
import type { QuantizedWeight } from '../checkpoint/quantize.js';
import type { StTensor } from '../checkpoint/safetensors.js';
import { LensError } from '../errors.js';
import type { ComputeType, ElemType, GraphBuilder } from './onnx-builder.js';

const ELEM_OF: Record<string, ElemType> = { F32: 'float', F16: 'float16', BF16: 'bfloat16' };

/**
 * float32 bytes per widened chunk. Each session's arena keeps about one chunk, so it bounds the
 * float32 memory per session; more chunks cost session-creation time (an 8B layer: 1.2 s at 2 MiB,
 * 0.55 s at 8 MiB, 0.16 s at 32 MiB on a loaded 2-core machine), while run time did not measurably
 * depend on it ([20, 4096]·[14336, 4096]ᵀ: 128 to 14336 rows per chunk within noise of a resident
 * float32 copy).
 */
export const CHUNK_BYTES = 8 * 2 ** 20;
/** Chunks per weight at most (the [V, D] unembedding gets bigger chunks rather than thousands of nodes). */
const MAX_CHUNKS = 64;
/**
 * float32 bytes per chunk of a weight widened once (folded by the session). ORT 1.29 left the Cast of
 * the 8B shape's whole [128256, 4096] unembedding (2.1 GB in float32) unfolded — session created in
 * 0.3 s, then every call widened it again and the arena kept 4.3 GB — while it folded the 1B shape's
 * 1.05 GB one; in pieces of this size each Cast folds.
 */
const FOLD_CHUNK_BYTES = 256 * 2 ** 20;

/**
 * Supplies quantized block weights while block graphs are built. `request` returns the weight when it
 * is ready; null means "not yet" (a first, validating build records what each layer needs, and that
 * graph, which falls back to the unquantized weights, is never run).
 */
export interface QuantizedSource {
  request(t: StTensor, layout: 'out_in' | 'in_out'): QuantizedWeight | null;
}

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
    /**
     * 16-bit weights stay 16-bit (memory-mapped) and are widened per call, in row chunks, right
     * before the MatMul that reads them; the sessions must keep ConstantFolding off
     * (see sessionOptions). Without it ORT folds every Cast once and holds a float32 copy of the model.
     */
    readonly castPerCall = false,
    private readonly chunkBytes = CHUNK_BYTES,
  ) {}

  /** Set while building the block graphs of a model opened with `quantize`. */
  quantized?: QuantizedSource;

  /** The linear weight quantized for MatMulNBits, or null when it is not (or not yet). */
  quantizedLinear(name: string, shape: number[], layout: 'out_in' | 'in_out'): QuantizedWeight | null {
    if (!this.quantized) return null;
    return this.quantized.request(this.tensor(name, shape), layout);
  }

  /** Whether `t` is widened per call (chunked) rather than folded once. */
  widensPerCall(t: StTensor): boolean {
    return this.castPerCall && this.compute === 'float' && (t.dtype === 'BF16' || t.dtype === 'F16');
  }

  /**
   * The weight as row chunks [rows_i, …] in the compute type, each its own external initializer over
   * a contiguous byte range of the file, so each chunk's float32 copy dies right after the MatMul
   * that reads it and the session's arena reuses one small buffer (see CHUNK_BYTES).
   * `float32Rows`: the first rows go behind Casts that the session folds into a float32 copy it keeps,
   * in pieces small enough to fold (FOLD_CHUNK_BYTES), for a session that folds constants; when rows
   * are left after them, their 16-bit initializers are also declared graph inputs (overridable, so
   * ORT's constant folding leaves their Casts alone) and they are widened per call.
   * `scale`: per-call chunks this many times CHUNK_BYTES (the unembedding's, see HEAD_CHUNK_SCALE in graph/head.ts).
   */
  bindRowChunks(
    g: GraphBuilder,
    name: string,
    shape: number[],
    { float32Rows = 0, scale = 1 }: { float32Rows?: number; scale?: number } = {},
  ): Array<{ value: string; from: number; rows: number }> {
    const t = this.tensor(name, shape);
    if (!this.widensPerCall(t)) return [{ value: this.bind(g, name, shape), from: 0, rows: t.shape[0] }];
    const width = t.shape.slice(1).reduce((a, d) => a * d, 1);
    const folded = Math.min(t.shape[0], Math.max(0, Math.floor(float32Rows)));
    const foldPer = Math.max(1, Math.floor(FOLD_CHUNK_BYTES / (4 * width)));
    const callPer = Math.max(1, Math.floor((scale * this.chunkBytes) / (4 * width)), Math.ceil(t.shape[0] / MAX_CHUNKS));
    const out: Array<{ value: string; from: number; rows: number }> = [];
    for (let from = 0; from < t.shape[0]; ) {
      const float32 = from < folded;
      const rows = float32 ? Math.min(foldPer, folded - from) : Math.min(callPer, t.shape[0] - from);
      const weight = {
        elemType: ELEM_OF[t.dtype],
        dims: [rows, ...t.shape.slice(1)],
        location: dataLocation(this.ckpt, t),
        offset: t.fileOffset + from * width * 2,
        length: rows * width * 2,
      };
      const init = g.external(`w:${t.name}:${from}`, weight, { overridable: !float32 && folded > 0 });
      out.push({ value: g.op('Cast', [init], { to: 1 }, `cast:${t.name}:${from}`), from, rows });
      from += rows;
    }
    return out;
  }

  /** Bytes of checkpoint tensors used by the graphs built so far. */
  usedBytes(): number {
    let n = 0;
    for (const name of this.used) n += this.ckpt.tensors.get(name)!.byteLength;
    return n;
  }

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
