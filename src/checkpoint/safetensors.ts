import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { LensError } from '../errors.js';

export type StDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I8' | 'U8' | 'BOOL' | 'I16' | 'U16';

export const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1,
};

export interface StTensor {
  name: string;
  dtype: StDtype;
  shape: number[];
  /** Absolute byte offset of the tensor's data inside the file. */
  fileOffset: number;
  byteLength: number;
  /** Real path of the file (symlinks resolved). */
  file: string;
}

/** Reads a safetensors header: 8-byte little-endian length, JSON, then the data region. */
export function readSafetensorsHeader(file: string): { tensors: StTensor[]; metadata: Record<string, string> } {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || readSync(fd, lenBuf, 0, 8, 0) !== 8) throw bad(file, 'file is shorter than the 8-byte header length');
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 0 || 8 + headerLen > size || headerLen > 100 * 1024 * 1024) {
      throw bad(file, `header length ${headerLen} does not fit a file of ${size} bytes`);
    }
    const json = Buffer.alloc(headerLen);
    readSync(fd, json, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(json.toString('utf8'));
    } catch {
      throw bad(file, 'header is not valid JSON');
    }
    const dataStart = 8 + headerLen;
    const tensors: StTensor[] = [];
    let metadata: Record<string, string> = {};
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') {
        metadata = (raw ?? {}) as Record<string, string>;
        continue;
      }
      const t = raw as { dtype: string; shape: number[]; data_offsets: [number, number] };
      const bytes = DTYPE_BYTES[t?.dtype];
      if (!bytes || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets)) throw bad(file, `tensor "${name}" has an invalid entry`);
      const [b, e] = t.data_offsets;
      const expected = t.shape.reduce((a, d) => a * d, 1) * bytes;
      if (e - b !== expected) throw bad(file, `tensor "${name}" spans ${e - b} bytes, shape ${JSON.stringify(t.shape)} ${t.dtype} needs ${expected}`);
      if (dataStart + e > size) throw bad(file, `tensor "${name}" runs past the end of the file (truncated?)`);
      tensors.push({ name, dtype: t.dtype as StDtype, shape: t.shape, fileOffset: dataStart + b, byteLength: e - b, file });
    }
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

function bad(file: string, why: string): LensError {
  return new LensError('CHECKPOINT_INVALID', `${file}: ${why}`);
}

/**
 * Rows `ids` of a 2-D tensor (or elements of a 1-D one) as float32, read straight from the file:
 * embedding lookups and the few unembedding columns trajectories need, never the whole matrix.
 */
export function readRows(t: StTensor, ids: number[]): Float32Array {
  const width = t.shape.length > 1 ? t.shape.slice(1).reduce((a, d) => a * d, 1) : 1;
  const rowBytes = width * DTYPE_BYTES[t.dtype];
  const out = new Float32Array(ids.length * width);
  const buf = Buffer.alloc(rowBytes);
  const fd = openSync(t.file, 'r');
  try {
    ids.forEach((id, i) => {
      if (!(id >= 0 && id < t.shape[0])) throw new LensError('INTERNAL', `row ${id} outside ${t.name} [${t.shape}]`);
      if (readSync(fd, buf, 0, rowBytes, t.fileOffset + id * rowBytes) !== rowBytes) throw bad(t.file, `short read in ${t.name}`);
      out.set(decodeFloats(buf, t.dtype), i * width);
    });
  } finally {
    closeSync(fd);
  }
  return out;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Decodes little-endian float data of any supported float dtype to float32. */
export function decodeFloats(buf: Buffer, dtype: StDtype): Float32Array {
  const n = buf.length / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  if (dtype === 'F32') {
    for (let i = 0; i < n; i++) out[i] = buf.readFloatLE(i * 4);
  } else if (dtype === 'F64') {
    for (let i = 0; i < n; i++) out[i] = buf.readDoubleLE(i * 8);
  } else if (dtype === 'BF16') {
    for (let i = 0; i < n; i++) out[i] = bf16ToF32(buf.readUInt16LE(i * 2));
  } else if (dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = f16ToF32(buf.readUInt16LE(i * 2));
  } else {
    throw new LensError('CHECKPOINT_INVALID', `dtype ${dtype} is not a float dtype`);
  }
  return out;
}

/**
 * The bytes a safetensors file starts with: the header's length (u64 LE) and its JSON, padded with
 * spaces to 8 bytes as the format requires. Tensor data follows in the order given, back to back.
 */
export function safetensorsPrefix(
  tensors: Array<{ name: string; dtype: StDtype; shape: number[]; byteLength: number }>,
  metadata: Record<string, string>,
): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.byteLength] };
    offset += t.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header));
  json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json]);
}
