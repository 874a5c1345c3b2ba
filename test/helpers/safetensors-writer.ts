import { writeFileSync } from 'node:fs';

export type WriteDtype = 'F32' | 'F16' | 'BF16';

export interface TensorIn {
  shape: number[];
  data: ArrayLike<number>; // float values; converted to dtype on write
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Round-to-nearest-even float32 → bfloat16 bits. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >> 16) & 1)) >>> 16) & 0xffff;
}

/** float → IEEE half bits (round to nearest). */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  let e = ((b >>> 23) & 0xff) - 127 + 15;
  let m = b & 0x7fffff;
  if (((b >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    m |= 0x800000;
    const shift = 14 - e;
    let h = m >> shift;
    if ((m >> (shift - 1)) & 1 && (m & ((1 << (shift - 1)) - 1) || h & 1)) h++;
    return sign | h;
  }
  let h = sign | (e << 10) | (m >> 13);
  if (m & 0x1000 && (m & 0xfff || h & 1)) h++;
  return h;
}

/** Writes a safetensors file (header JSON padded to 8 bytes, tensors in insertion order). */
export function writeSafetensors(
  file: string,
  tensors: Record<string, TensorIn>,
  dtype: WriteDtype | ((name: string) => WriteDtype) = 'F32',
  metadata: Record<string, string> = { format: 'pt' },
): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const dt = typeof dtype === 'function' ? dtype(name) : dtype;
    const n = t.shape.reduce((a, d) => a * d, 1);
    if (t.data.length !== n) throw new Error(`${name}: ${t.data.length} values for shape ${t.shape}`);
    const buf = Buffer.alloc(n * (dt === 'F32' ? 4 : 2));
    for (let i = 0; i < n; i++) {
      if (dt === 'F32') buf.writeFloatLE(t.data[i], i * 4);
      else if (dt === 'BF16') buf.writeUInt16LE(f32ToBf16(t.data[i]), i * 2);
      else buf.writeUInt16LE(f32ToF16(t.data[i]), i * 2);
    }
    header[name] = { dtype: dt, shape: t.shape, data_offsets: [offset, offset + buf.length] };
    offset += buf.length;
    chunks.push(buf);
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, ...chunks]));
}
