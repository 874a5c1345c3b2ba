import onnxProto from 'onnx-proto';
import { toHalfBits } from '../checkpoint/dtype.js';

const { onnx } = onnxProto;

export const OPSET = 21;
const IR_VERSION = 10;

export type ElemType = 'float' | 'double' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';

const ELEM: Record<ElemType, number> = {
  float: onnx.TensorProto.DataType.FLOAT,
  double: onnx.TensorProto.DataType.DOUBLE,
  float16: onnx.TensorProto.DataType.FLOAT16,
  bfloat16: onnx.TensorProto.DataType.BFLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  uint8: onnx.TensorProto.DataType.UINT8,
  bool: onnx.TensorProto.DataType.BOOL,
};

/**
 * The float type a graph computes in. Graph inputs/outputs that cross to JS stay float32 either
 * way (Node has no Float16Array, and the residual stream keeps its precision between blocks);
 * weights, constants and the arithmetic in between follow this.
 */
export type ComputeType = 'float' | 'float16';

const ONNX_TYPE: Record<ComputeType, number> = { float: 1, float16: 10 };

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };

/** A weight that stays where it is: ONNX external data pointing into a safetensors data region. */
export interface ExternalWeight {
  elemType: ElemType;
  dims: number[];
  /** Path relative to the session's external-data folder. */
  location: string;
  offset: number;
  length: number;
}

/**
 * Minimal deterministic ONNX graph writer. Node names follow the scope path
 * (`/layers.3/attn/MatMul`), values are `<node>/output_<i>`, and constants are
 * deduplicated by content so identical graphs serialise identically.
 */
export class GraphBuilder {
  private nodes: onnxProto.onnx.INodeProto[] = [];
  private inits: onnxProto.onnx.ITensorProto[] = [];
  private inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private names = new Map<string, number>();
  private constCache = new Map<string, string>();
  private scopes: string[] = [];
  private domains = new Set<string>();

  constructor(
    readonly name: string,
    readonly compute: ComputeType = 'float',
  ) {}

  scoped<T>(scope: string, fn: () => T): T {
    this.scopes.push(scope);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  input(name: string, elemType: ElemType, dims: Array<number | string>): string {
    this.inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  output(value: string, name: string, elemType: ElemType, dims: Array<number | string>): void {
    if (value !== name) this.node('Identity', [value], { outputs: [name] });
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  /** Adds a node; returns its output value names. */
  node(
    op: string,
    inputs: string[],
    opts: { attrs?: Record<string, AttrValue>; outputs?: string[] | number; domain?: string; name?: string } = {},
  ): string[] {
    const base = `/${[...this.scopes, opts.name ?? op].join('/')}`;
    const seen = this.names.get(base) ?? 0;
    this.names.set(base, seen + 1);
    const nodeName = seen === 0 ? base : `${base}_${seen}`;
    const outputs = Array.isArray(opts.outputs)
      ? opts.outputs
      : Array.from({ length: opts.outputs ?? 1 }, (_, i) => `${nodeName}/output_${i}`);
    if (opts.domain) this.domains.add(opts.domain);
    this.nodes.push({
      name: nodeName,
      opType: op,
      domain: opts.domain ?? '',
      input: inputs,
      output: outputs,
      attribute: Object.entries(opts.attrs ?? {}).map(([k, v]) => attribute(k, v)),
    });
    return outputs;
  }

  /** Single-output shorthand. */
  op(op: string, inputs: string[], attrs?: Record<string, AttrValue>, name?: string): string {
    return this.node(op, inputs, { attrs, name })[0];
  }

  constInt64(values: number[], scalar = false): string {
    return this.constant('int64', scalar ? [] : [values.length], values);
  }

  /** A constant in the compute type: it meets compute-typed values in Mul/Add/Clip/…. */
  constFloat(values: number[], dims?: number[]): string {
    return this.constant(this.compute, dims ?? [], values);
  }

  /** A float32 constant whatever the compute type (for math kept in float32). */
  constFloat32(values: number[], dims?: number[]): string {
    return this.constant('float', dims ?? [], values);
  }

  /** float32 → compute type (no node when they are the same). */
  toCompute(value: string): string {
    return this.compute === 'float' ? value : this.op('Cast', [value], { to: ONNX_TYPE[this.compute] }, 'ToCompute');
  }

  /** compute type → float32 (no node when they are the same). */
  toFloat32(value: string): string {
    return this.compute === 'float' ? value : this.op('Cast', [value], { to: ONNX_TYPE.float }, 'ToFloat32');
  }

  private constant(elemType: 'int64' | 'float' | 'float16', dims: number[], values: number[]): string {
    const key = `${elemType}:${dims.join('x')}:${values.join(',')}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = `/const/${elemType}_${this.constCache.size}`;
    const t: onnxProto.onnx.ITensorProto = { name, dims, dataType: ELEM[elemType] };
    if (elemType === 'int64') t.int64Data = values;
    // ONNX stores float16 in int32_data as the 16-bit patterns, one per element.
    else if (elemType === 'float16') t.int32Data = values.map(toHalfBits);
    else t.floatData = values;
    this.inits.push(t);
    this.constCache.set(key, name);
    return name;
  }

  /** A tensor embedded in the graph in the compute type (small: norm weights made up by the architecture, etc.). */
  embedded(name: string, dims: number[], values: Float32Array): string {
    if (this.compute === 'float16') {
      const bits = Uint16Array.from(values, toHalfBits);
      this.inits.push({ name, dims, dataType: ELEM.float16, rawData: new Uint8Array(bits.buffer) });
    } else {
      this.inits.push({ name, dims, dataType: ELEM.float, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
    }
    return name;
  }

  /** A tensor embedded as raw little-endian bytes in its own element type (e.g. lens translators read from .pt files). */
  raw(name: string, elemType: ElemType, dims: number[], bytes: Uint8Array): string {
    this.inits.push({ name, dims, dataType: ELEM[elemType], rawData: bytes });
    return name;
  }

  /**
   * `overridable`: also declared a graph input (with the initializer as its default, IR ≥ 4), which ORT
   * does not treat as a constant: its consumers are not folded at session creation.
   */
  external(name: string, w: ExternalWeight, { overridable = false } = {}): string {
    if (overridable) this.inputs.push(valueInfo(name, w.elemType, w.dims));
    this.inits.push({
      name,
      dims: w.dims,
      dataType: ELEM[w.elemType],
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: w.location },
        { key: 'offset', value: String(w.offset) },
        { key: 'length', value: String(w.length) },
      ],
    });
    return name;
  }

  toBytes(): Uint8Array {
    const opsetImport = [{ domain: '', version: OPSET }, ...[...this.domains].map((domain) => ({ domain, version: 1 }))];
    return onnx.ModelProto.encode({
      irVersion: IR_VERSION,
      producerName: 'lensgate',
      opsetImport,
      graph: { name: this.name, node: this.nodes, initializer: this.inits, input: this.inputs, output: this.outputs },
    }).finish();
  }
}

function valueInfo(name: string, elemType: ElemType, dims: Array<number | string>): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[elemType],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') return { name, type: T.INT, i: v };
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.FLOATS, floats: v.floats };
}
