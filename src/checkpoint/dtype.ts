import { bf16ToF32, f16ToF32 } from './safetensors.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds x as torch would when it stores it in `dtype` (round to nearest even). */
export function roundToDtype(x: number, dtype: string): number {
  if (dtype === 'F32') return Math.fround(x);
  if (dtype === 'BF16') {
    f32[0] = x;
    const bits = u32[0];
    return bf16ToF32(((bits + 0x7fff + ((bits >> 16) & 1)) >>> 16) & 0xffff);
  }
  if (dtype === 'F16') return f16ToF32(toHalfBits(x));
  return x;
}

/** float → IEEE half bit pattern, round to nearest even (overflow → ±inf). */
export function toHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = ((b >>> 23) & 0xff) - 127 + 15;
  const mant = b & 0x7fffff;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) return sign | Math.round((mant | 0x800000) / 2 ** (14 - exp));
  let h = sign | (exp << 10) | (mant >> 13);
  if (mant & 0x1000 && (mant & 0xfff || h & 1)) h++;
  return h;
}
